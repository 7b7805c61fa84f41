//! Producer ids for idempotent producers, handed out from controller-allocated blocks.

use sluice_controller::{Command, CommandResult, ControllerClient};
use tokio::sync::Mutex;

use crate::error::BrokerError;

/// Ids fetched from the controller per block.
const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids, fetching a new block from the controller when one runs out.
#[derive(Default)]
pub struct ProducerIdAllocator {
    block: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    /// The next unused producer id.
    pub async fn next(&self, controller: &ControllerClient) -> Result<i64, BrokerError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            match controller
                .execute(Command::AllocateProducerIds { count: BLOCK_SIZE })
                .await?
            {
                CommandResult::ProducerIds { first } => *block = (first, first + BLOCK_SIZE),
                other => {
                    return Err(BrokerError::Controller(format!(
                        "unexpected result {other:?}"
                    )))
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
