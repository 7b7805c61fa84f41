#!/usr/bin/env bash
# Installs every real Kafka client used by the compatibility tests into a cache dir.
# Idempotent: each step leaves a stamp file and is skipped when the stamp matches.
#   SLUICE_COMPAT_CACHE   cache dir (default ~/.cache/sluice-compat)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SLUICE_COMPAT_CACHE:-$HOME/.cache/sluice-compat}"

KAFKA_VERSION=4.4.0
PLUGIN_SOURCES_VERSION=4.3.1   # newest connect-file/connect-mirror sources on Maven Central
LOG4J_VERSION=2.25.4    # the log4j2 binding for the Kafka tools (Kafka 4.4.0 ships log4j2)
CONFLUENT_KAFKA_VERSION=2.16.1
KAFKA_PYTHON_VERSION=3.0.12
KAFKAJS_VERSION=2.2.4   # pinned in clients/node/package.json + package-lock.json
# librdkafka's rdkafka_performance (the benchmark's light load generator), built from the
# librdkafka source that crates.io ships inside the rdkafka-sys crate.
RDKAFKA_SYS_VERSION=4.9.0+2.10.0
RDKAFKA_SYS_SHA256=5230dca48bc354d718269f3e4353280e188b610f7af7e2fcf54b7a79d5802872

mkdir -p "$CACHE"
step() { printf '[setup] %-28s %s\n' "$1" "$2"; }
die() { echo "[setup] FAILED: $*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR

# stamp NAME CONTENT: true (0) if the stamp for NAME already holds CONTENT.
stamp_ok() { [[ -f "$CACHE/.stamp-$1" && "$(cat "$CACHE/.stamp-$1")" == "$2" ]]; }
stamp_set() { printf '%s' "$2" >"$CACHE/.stamp-$1"; }
hash_files() { cat "$@" | sha256sum | cut -c1-16; }
# quiet CMD...: run CMD with its output in $CACHE/setup.log, shown only if it fails.
quiet() { "$@" >"$CACHE/setup.log" 2>&1 || { cat "$CACHE/setup.log" >&2; die "$*"; }; }

for tool in java javac mvn python3 go node npm; do
  command -v "$tool" >/dev/null || die "$tool not found (needs Java 17 + Maven, Python 3, Go, Node)"
done

# apt_tool NAME: installs Debian package NAME (providing command NAME) unless present.
apt_tool() {
  if command -v "$1" >/dev/null; then
    step "$1" "present ($(dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'))"
    return
  fi
  step "$1" "installing via apt-get"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q --no-install-recommends "$1" >"$CACHE/setup.log" 2>&1; then  # stale lists: update once
    quiet $sudo apt-get update -q
    quiet $sudo apt-get install -y -q --no-install-recommends "$1"
  fi
  command -v "$1" >/dev/null || die "$1 not installed"
}

# --- 1. Debian tools: kcat (links librdkafka 2.0.2), Prometheus (scrapes sluice in tests),
# openssl (makes the throwaway certificates of the TLS tests, src/tls.rs), faketime (its
# libfaketime sets a node's wall clock in the fault matrix's clock-jump cells)
apt_tool kcat
apt_tool prometheus
apt_tool openssl
apt_tool faketime

# --- 2. Apache Kafka jars (clients, tools, broker, Streams, Connect) from Maven Central ---
KAFKA_DIR="$CACHE/kafka-$KAFKA_VERSION"
if stamp_ok kafka "$KAFKA_VERSION-$LOG4J_VERSION-streams-connect-plugins-src-$PLUGIN_SOURCES_VERSION" \
    && ls "$KAFKA_DIR"/lib/kafka_2.13-"$KAFKA_VERSION".jar "$KAFKA_DIR"/lib/connect-{file,mirror}-*.jar >/dev/null 2>&1; then
  step "kafka $KAFKA_VERSION jars" "cached"
else
  step "kafka $KAFKA_VERSION jars" "resolving with maven"
  rm -rf "$KAFKA_DIR/lib"; mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sluice</groupId><artifactId>compat-kafka-lib</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-streams</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- Kafka Connect (bin/connect-distributed, MirrorMaker 2's runtime) -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- the slf4j binding the Kafka distribution ships (not a transitive dependency) -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  quiet mvn -B -f "$KAFKA_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
      dependency:copy-dependencies -DoutputDirectory="$KAFKA_DIR/lib" -DincludeScope=runtime
  ls "$KAFKA_DIR"/lib/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13 jar missing"
  # The FileStream connectors (connect-file) and MirrorMaker 2 (connect-mirror-client,
  # connect-mirror) are not on Maven Central for 4.4.0, and their 4.3 jars fail on 4.4, which
  # moved AppInfoParser and Exit to common.utils.internals: build them from the newest
  # published sources with those two imports moved, against the 4.4 jars.
  for artifact in connect-file connect-mirror-client connect-mirror; do
    src="$KAFKA_DIR/$artifact-src"; rm -rf "$src"; mkdir -p "$src/classes"
    quiet mvn -B -Dmaven.repo.local="$CACHE/m2" dependency:copy \
        -Dartifact="org.apache.kafka:$artifact:$PLUGIN_SOURCES_VERSION:jar:sources" -DoutputDirectory="$src"
    (cd "$src/classes" && jar xf "$src/$artifact-$PLUGIN_SOURCES_VERSION-sources.jar")
    mapfile -t java_files < <(find "$src/classes" -name '*.java')
    sed -i -E 's/import org\.apache\.kafka\.common\.utils\.(AppInfoParser|Exit);/import org.apache.kafka.common.utils.internals.\1;/' \
        "${java_files[@]}"
    quiet javac -nowarn -cp "$KAFKA_DIR/lib/*" -d "$src/classes" "${java_files[@]}"
    rm "${java_files[@]}"
    jar cf "$KAFKA_DIR/lib/$artifact-$PLUGIN_SOURCES_VERSION-on-$KAFKA_VERSION.jar" -C "$src/classes" .
    rm -rf "$src"
  done
  stamp_set kafka "$KAFKA_VERSION-$LOG4J_VERSION-streams-connect-plugins-src-$PLUGIN_SOURCES_VERSION"
fi

# --- 3. Java client programs ---------------------------------------------------------
JAVA_SRC=("$HERE"/clients/java/*.java)
JAVA_KEY="$KAFKA_VERSION-$(hash_files "${JAVA_SRC[@]}")"
if stamp_ok java "$JAVA_KEY" && [[ -f "$CACHE/java-classes/Roundtrip.class" ]]; then
  step "java client" "cached"
else
  step "java client" "compiling"
  rm -rf "$CACHE/java-classes"; mkdir -p "$CACHE/java-classes"
  quiet javac -nowarn -cp "$KAFKA_DIR/lib/*" -d "$CACHE/java-classes" "${JAVA_SRC[@]}"
  stamp_set java "$JAVA_KEY"
fi

# --- 4. Python venv: confluent-kafka + kafka-python ------------------------------------
PY_PKGS="confluent-kafka==$CONFLUENT_KAFKA_VERSION kafka-python==$KAFKA_PYTHON_VERSION"
PY_KEY="$(python3 -V) $PY_PKGS"
if stamp_ok venv "$PY_KEY" && [[ -x "$CACHE/venv/bin/python" ]]; then
  step "python venv" "cached"
else
  step "python venv" "installing $PY_PKGS"
  rm -rf "$CACHE/venv"
  python3 -m venv "$CACHE/venv"
  quiet "$CACHE/venv/bin/pip" install --disable-pip-version-check $PY_PKGS
  "$CACHE/venv/bin/python" -c 'import confluent_kafka, kafka' || die "python clients do not import"
  stamp_set venv "$PY_KEY"
fi

# --- 5. Go franz-go client ----------------------------------------------------------
GO_DIR="$HERE/clients/go"
GO_KEY="$(go env GOVERSION)-$(hash_files "$GO_DIR"/go.mod "$GO_DIR"/go.sum "$GO_DIR"/*.go "$GO_DIR"/group/*.go)"
if stamp_ok go "$GO_KEY" && [[ -x "$CACHE/bin/franz-roundtrip" && -x "$CACHE/bin/franz-group" ]]; then
  step "go franz-go client" "cached"
else
  step "go franz-go client" "building"
  mkdir -p "$CACHE/bin"
  quiet go -C "$GO_DIR" build -trimpath -o "$CACHE/bin/franz-roundtrip" .
  quiet go -C "$GO_DIR" build -trimpath -o "$CACHE/bin/franz-group" ./group
  stamp_set go "$GO_KEY"
fi

# --- 5b. franz-go's own kgo test suite (bin/kgo-suite) --------------------------------
# `go test -c` of github.com/twmb/franz-go/pkg/kgo at the version pinned in clients/kgo-suite
# (same franz-go as clients/go); the binary runs the suite against a broker via KGO_SEEDS.
KGO_DIR="$HERE/clients/kgo-suite"
KGO_KEY="$(go env GOVERSION)-$(hash_files "$KGO_DIR"/go.mod "$KGO_DIR"/go.sum "$KGO_DIR"/*.go)"
if stamp_ok kgo-suite "$KGO_KEY" && [[ -x "$CACHE/bin/kgo.test" ]]; then
  step "franz-go kgo test suite" "cached"
else
  step "franz-go kgo test suite" "compiling kgo.test"
  mkdir -p "$CACHE/bin"
  quiet go -C "$KGO_DIR" test -c -trimpath -o "$CACHE/bin/kgo.test" github.com/twmb/franz-go/pkg/kgo
  stamp_set kgo-suite "$KGO_KEY"
fi

# --- 5c. Go IBM/sarama client (bin/sarama-client) -------------------------------------
# produce / consume-group / admin subcommands on IBM/sarama (version pinned in its go.mod).
SARAMA_DIR="$HERE/clients/sarama"
SARAMA_KEY="$(go env GOVERSION)-$(hash_files "$SARAMA_DIR"/go.mod "$SARAMA_DIR"/go.sum "$SARAMA_DIR"/*.go)"
if stamp_ok sarama "$SARAMA_KEY" && [[ -x "$CACHE/bin/sarama-client" ]]; then
  step "go sarama client" "cached"
else
  step "go sarama client" "building"
  mkdir -p "$CACHE/bin"
  quiet go -C "$SARAMA_DIR" build -trimpath -o "$CACHE/bin/sarama-client" .
  stamp_set sarama "$SARAMA_KEY"
fi

# --- 5d. librdkafka's rdkafka_performance (bin/rdkafka_performance) ------------------
# Without TLS, SASL, zstd or zlib: the benchmark needs none, and the build needs nothing but
# a C compiler and make (about 40 s on 2 cores).
if stamp_ok rdkafka-perf "$RDKAFKA_SYS_VERSION" && [[ -x "$CACHE/bin/rdkafka_performance" ]]; then
  step "rdkafka_performance" "cached"
else
  step "rdkafka_performance" "building librdkafka ${RDKAFKA_SYS_VERSION#*+}"
  src="$CACHE/rdkafka-sys-src"; rm -rf "$src"; mkdir -p "$src" "$CACHE/bin"
  quiet curl -fsSL -o "$src/rdkafka-sys.crate" \
      "https://static.crates.io/crates/rdkafka-sys/rdkafka-sys-$RDKAFKA_SYS_VERSION.crate"
  echo "$RDKAFKA_SYS_SHA256  $src/rdkafka-sys.crate" | sha256sum -c --quiet - || die "rdkafka-sys checksum"
  tar xzf "$src/rdkafka-sys.crate" -C "$src" --strip-components=1
  lib="$src/librdkafka"
  chmod +x "$lib/configure" "$lib/lds-gen.py" 2>/dev/null || true
  (cd "$lib" && quiet ./configure --disable-ssl --disable-gssapi --disable-sasl --disable-curl \
      --disable-zstd --disable-zlib --enable-static)
  quiet make -C "$lib/src" -j"$(nproc)" librdkafka.a
  quiet cc -O2 -I"$lib/src" -o "$CACHE/bin/rdkafka_performance" "$lib/examples/rdkafka_performance.c" \
      "$lib/src/librdkafka.a" -lpthread -lm -lrt -ldl
  rm -rf "$src"
  stamp_set rdkafka-perf "$RDKAFKA_SYS_VERSION"
fi

# --- 6. Node kafkajs client ---------------------------------------------------------
NODE_DIR="$HERE/clients/node"
NODE_KEY="$(hash_files "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json")"
if [[ -f "$NODE_DIR/node_modules/.sluice-stamp" && "$(cat "$NODE_DIR/node_modules/.sluice-stamp")" == "$NODE_KEY" ]]; then
  step "node kafkajs client" "cached"
else
  step "node kafkajs client" "npm ci (kafkajs@$KAFKAJS_VERSION)"
  quiet npm ci --prefix "$NODE_DIR" --no-audit --no-fund
  printf '%s' "$NODE_KEY" >"$NODE_DIR/node_modules/.sluice-stamp"
fi

step done "cache: $CACHE"
