//! openraft's storage conformance suite, run against the sled log store and state machine.

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let log = LogStore::open(&dir.path().join("journal"))
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm = StateMachine::open(&dir.path().join("meta"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_stores_pass_the_openraft_suite() -> Result<(), StorageError> {
    Suite::test_all(SledBuilder)
}
