# Sourced by the launchers in this folder: where setup.sh installed everything.
CACHE="${SLUICE_COMPAT_CACHE:-$HOME/.cache/sluice-compat}"
COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION=4.4.0
KAFKA_LIB="$CACHE/kafka-$KAFKA_VERSION/lib"

need() { [[ -e "$1" ]] || { echo "$(basename "$0"): $1 missing: run compat-tests/setup.sh" >&2; exit 127; }; }

# kafka_java MAINCLASS ARGS...: run a class from the Kafka jars, logging at WARN to stderr.
# KAFKA_HEAP_OPTS / KAFKA_OPTS / KAFKA_LOG4J_CONFIG override the defaults, as in Kafka's scripts.
kafka_java() {
  need "$KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar"
  local cls="$1"; shift
  # shellcheck disable=SC2086
  exec java ${KAFKA_HEAP_OPTS:--Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="${KAFKA_LOG4J_CONFIG:-$COMPAT_DIR/bin/log4j2-warn.properties}" \
    ${KAFKA_OPTS:-} -cp "${EXTRA_CLASSPATH:+$EXTRA_CLASSPATH:}$KAFKA_LIB/*" "$cls" "$@"
}
