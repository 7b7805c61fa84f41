//! SaslHandshake: the client names the SASL mechanism it will authenticate with. Served by
//! the authenticator before a SASL connection's first request; anywhere else it is out of
//! turn.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::str_bytes;
use crate::error::BrokerError;
use crate::security::Mechanism;

/// The answer to a handshake on a connection that enabled `enabled`, and the mechanism
/// chosen if the client's is one of them.
pub fn handle(
    enabled: &[Mechanism],
    req: &SaslHandshakeRequest,
) -> (SaslHandshakeResponse, Option<Mechanism>) {
    let chosen = Mechanism::from_name(req.mechanism.as_str()).filter(|m| enabled.contains(m));
    let mut response = SaslHandshakeResponse::default()
        .with_mechanisms(enabled.iter().map(|m| str_bytes(m.name())).collect());
    if chosen.is_none() {
        let error = BrokerError::UnsupportedSaslMechanism(String::new());
        response = response.with_error_code(error.code());
    }
    (response, chosen)
}

/// The answer once the connection has authenticated, or does not use SASL.
pub fn out_of_turn() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(BrokerError::IllegalSaslState(String::new()).code())
}
