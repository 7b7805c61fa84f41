//! SaslAuthenticate: one message of the SASL exchange. Served by the authenticator before a
//! SASL connection's first request; anywhere else it is out of turn.

use bytes::Bytes;
use kafka_protocol::messages::SaslAuthenticateResponse;

use crate::error::BrokerError;

/// The answer carrying the server's next message, or why the exchange failed.
pub fn answer(outcome: Result<Vec<u8>, BrokerError>) -> SaslAuthenticateResponse {
    match outcome {
        // Kafka's connections.max.reauth.ms=0 default: the session does not expire.
        Ok(message) => SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(message))
            .with_session_lifetime_ms(0),
        Err(e) => SaslAuthenticateResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message())),
    }
}

/// The answer once the connection has authenticated, or does not use SASL.
pub fn out_of_turn() -> SaslAuthenticateResponse {
    answer(Err(BrokerError::IllegalSaslState(
        "SaslAuthenticate is only expected during a SASL exchange".into(),
    )))
}
