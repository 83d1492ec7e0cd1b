//! Publisher confirms and transactions on a channel: confirm.select,
//! tx.select / commit / rollback, and the mode a channel is in.
//!
//! A transaction keeps its publishes (and its acks, nacks and rejects) until
//! tx.commit, which publishes them through the engine's pipeline in order and
//! answers commit-ok once the persistent ones are on disk.

use std::sync::Arc;

use amq_protocol::protocol::{confirm, tx, AMQPClass};

use super::basic::Settle;
use super::confirms::Confirms;
use super::{unexpected, Channel, Session};
use crate::engine::message::Message;
use crate::engine::queue::delivery::ClientLink;
use crate::engine::queue::delivery::Unacked;
use crate::protocol::error::AmqpError;
use crate::protocol::frame;
use crate::store::{SyncListener, SyncWaiter};

/// Plain, confirming (with the next publish sequence number and the answers
/// owed), or transactional.
pub(super) enum Mode {
    Plain,
    Confirm {
        next_seq: u64,
        confirms: Arc<Confirms>,
    },
    Tx(Tx),
}

/// A message published inside a transaction, published at commit.
pub(super) struct TxPublish {
    pub(crate) exchange: String,
    pub(crate) mandatory: bool,
    pub(crate) message: Arc<Message>,
}

/// What a transaction holds until commit or rollback.
#[derive(Default)]
pub(super) struct Tx {
    pub(crate) publishes: Vec<TxPublish>,
    pub(crate) settles: Vec<(Vec<Unacked>, Settle)>,
}

impl Channel {
    pub(super) fn confirm_select(
        &mut self,
        session: &mut Session,
        select: confirm::Select,
    ) -> Result<(), AmqpError> {
        match self.mode {
            Mode::Tx(_) => {
                return Err(AmqpError::PreconditionFailed(
                    "cannot switch from tx to confirm mode".into(),
                ))
            }
            Mode::Plain => {
                self.mode = Mode::Confirm {
                    next_seq: 1,
                    confirms: Confirms::new(self.id, session.handle.clone()),
                }
            }
            Mode::Confirm { .. } => {}
        }
        if !select.nowait {
            self.send(
                session,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
            );
        }
        Ok(())
    }

    pub(super) fn tx_method(
        &mut self,
        session: &mut Session,
        method: tx::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let not_tx = || AmqpError::PreconditionFailed("channel is not transactional".into());
        match method {
            tx::AMQPMethod::Select(_) => {
                match self.mode {
                    Mode::Confirm { .. } => {
                        return Err(AmqpError::PreconditionFailed(
                            "cannot switch from confirm to tx mode".into(),
                        ))
                    }
                    Mode::Plain => self.mode = Mode::Tx(Tx::default()),
                    Mode::Tx(_) => {}
                }
                self.send(
                    session,
                    AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                );
            }
            tx::AMQPMethod::Commit(_) => {
                let Mode::Tx(tx) = &mut self.mode else {
                    return Err(not_tx());
                };
                let tx = std::mem::take(tx);
                let mut stored = false;
                for p in tx.publishes {
                    // An exchange deleted since the publish just routes nowhere.
                    match self.publish(session, &p.exchange, p.mandatory, p.message) {
                        Ok(outcome) if outcome.failed => {
                            return Err(AmqpError::InternalError(
                                "cannot write a persistent message to the log".into(),
                            ))
                        }
                        Ok(outcome) => stored |= outcome.stored,
                        Err(AmqpError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                for (entries, outcome) in tx.settles {
                    self.apply(entries, outcome);
                }
                if stored {
                    // commit-ok means the transaction's persistent messages are on disk.
                    session.vhost.log.after_sync(SyncWaiter {
                        listener: Arc::new(CommitOk {
                            channel: self.id,
                            link: session.handle.clone(),
                        }),
                        token: 0,
                    });
                } else {
                    self.send(session, commit_ok());
                }
            }
            tx::AMQPMethod::Rollback(_) => {
                let Mode::Tx(tx) = &mut self.mode else {
                    return Err(not_tx());
                };
                let tx = std::mem::take(tx);
                let entries: Vec<Unacked> = tx.settles.into_iter().flat_map(|(e, _)| e).collect();
                self.delivery.restore(entries);
                self.send(
                    session,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
            }
            _ => return Err(unexpected()),
        }
        Ok(())
    }
}

fn commit_ok() -> AMQPClass {
    AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}))
}

/// A commit whose persistent messages wait for the disk: commit-ok once they
/// are there; if the fsync failed the client cannot be told the truth, so
/// the connection ends.
struct CommitOk {
    channel: u16,
    link: Arc<ClientLink>,
}

impl SyncListener for CommitOk {
    fn synced(&self, _: &[u64], ok: bool) {
        if ok {
            let channel = self.channel;
            self.link
                .send(|out| frame::push_method(out, channel, commit_ok()));
        } else {
            self.link.sink.close();
        }
    }
}
