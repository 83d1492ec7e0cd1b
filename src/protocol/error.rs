//! AMQP errors and the one place where they map to reply codes.
//!
//! Every refusal the broker sends to a client is an [`AmqpError`]: the variant
//! picks the reply code and whether the channel or the whole connection closes
//! (RabbitMQ's scoping: 403, 404, 405 and 406 close the channel; the others
//! close the connection). The text is RabbitMQ's wording where a client may
//! look at it; `Display` renders the full reply text (`NOT_FOUND - no queue ...`).

use thiserror::Error;

/// A protocol-level refusal, with the text to send.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub(crate) enum AmqpError {
    #[error("CONNECTION_FORCED - {0}")]
    ConnectionForced(String),
    #[error("ACCESS_REFUSED - {0}")]
    AccessRefused(String),
    #[error("NOT_FOUND - {0}")]
    NotFound(String),
    #[error("RESOURCE_LOCKED - {0}")]
    ResourceLocked(String),
    #[error("PRECONDITION_FAILED - {0}")]
    PreconditionFailed(String),
    #[error("FRAME_ERROR - {0}")]
    FrameError(String),
    #[error("SYNTAX_ERROR - {0}")]
    SyntaxError(String),
    #[error("COMMAND_INVALID - {0}")]
    CommandInvalid(String),
    #[error("CHANNEL_ERROR - {0}")]
    ChannelError(String),
    #[error("UNEXPECTED_FRAME - {0}")]
    UnexpectedFrame(String),
    #[error("NOT_ALLOWED - {0}")]
    NotAllowed(String),
    #[error("NOT_IMPLEMENTED - {0}")]
    NotImplemented(String),
    #[error("INTERNAL_ERROR - {0}")]
    InternalError(String),
}

impl AmqpError {
    /// The AMQP reply code.
    pub(crate) fn code(&self) -> u16 {
        match self {
            AmqpError::ConnectionForced(_) => 320,
            AmqpError::AccessRefused(_) => 403,
            AmqpError::NotFound(_) => 404,
            AmqpError::ResourceLocked(_) => 405,
            AmqpError::PreconditionFailed(_) => 406,
            AmqpError::FrameError(_) => 501,
            AmqpError::SyntaxError(_) => 502,
            AmqpError::CommandInvalid(_) => 503,
            AmqpError::ChannelError(_) => 504,
            AmqpError::UnexpectedFrame(_) => 505,
            AmqpError::NotAllowed(_) => 530,
            AmqpError::NotImplemented(_) => 540,
            AmqpError::InternalError(_) => 541,
        }
    }

    /// Whether this error closes the whole connection rather than one channel.
    pub(crate) fn closes_connection(&self) -> bool {
        !matches!(
            self,
            AmqpError::AccessRefused(_)
                | AmqpError::NotFound(_)
                | AmqpError::ResourceLocked(_)
                | AmqpError::PreconditionFailed(_)
        )
    }

    /// The reply text, truncated to fit an AMQP short string.
    pub(crate) fn reply_text(&self) -> String {
        let mut text = self.to_string();
        if text.len() > 255 {
            let mut end = 255;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

/// An error together with the method that caused it (sent in connection.close /
/// channel.close so clients can tell which call failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MethodError {
    pub(crate) error: AmqpError,
    pub(crate) class_id: u16,
    pub(crate) method_id: u16,
}

impl MethodError {
    pub(crate) fn new(error: AmqpError, class_id: u16, method_id: u16) -> Self {
        Self {
            error,
            class_id,
            method_id,
        }
    }
}

impl MethodError {
    /// The error, caused by method `id`.
    pub(crate) fn on(error: AmqpError, id: crate::protocol::constants::MethodId) -> Self {
        Self::new(error, id.0, id.1)
    }
}

impl From<AmqpError> for MethodError {
    fn from(error: AmqpError) -> Self {
        Self::new(error, 0, 0)
    }
}

/// Shorthand for the many "thing 'x' in vhost 'v'" texts.
pub(crate) fn in_vhost(kind: &str, name: &str, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_follows_rabbitmq() {
        assert!(!AmqpError::NotFound("x".into()).closes_connection());
        assert!(!AmqpError::PreconditionFailed("x".into()).closes_connection());
        assert!(AmqpError::NotAllowed("x".into()).closes_connection());
        assert!(AmqpError::NotImplemented("x".into()).closes_connection());
        assert_eq!(AmqpError::NotImplemented("x".into()).code(), 540);
    }

    #[test]
    fn reply_text_is_bounded() {
        let e = AmqpError::NotFound("é".repeat(300));
        assert!(e.reply_text().len() <= 255);
        assert!(e.reply_text().starts_with("NOT_FOUND - "));
    }
}
