//! The typed store errors print what the string errors they replaced
//! printed: the CLI and the logs show these texts.

use std::path::PathBuf;

use griot_registry::store::{SetupError, StoreError, TaskError};

fn text(e: impl Into<StoreError>) -> String {
    e.into().to_string()
}

#[test]
fn setup_errors_keep_their_messages() {
    let db = PathBuf::from("/data/r.db");
    assert_eq!(
        text(SetupError::DatabaseMissing { path: db.clone() }),
        "the database /data/r.db does not exist"
    );
    assert_eq!(
        text(SetupError::MissingFolder {
            db: db.clone(),
            folder: "/data".into()
        }),
        "cannot create the database /data/r.db: the folder /data does not exist"
    );
    assert_eq!(
        text(SetupError::NewerSchema { found: 9, known: 4 }),
        "the database was written by a newer griot-registry (schema version 9; this binary \
         knows up to 4); upgrade the binary instead"
    );
    assert_eq!(
        text(SetupError::BackupExists {
            path: "/b.db".into()
        }),
        "/b.db already exists; choose a new path so no file is overwritten"
    );
    assert_eq!(
        text(SetupError::AlreadyServed {
            db: db.clone(),
            lock: "/data/r.db.lock".into(),
            pid: Some(42)
        }),
        "another griot-registry server (pid 42) already serves /data/r.db; only one server may \
         use a database file at a time (it holds the lock on /data/r.db.lock)"
    );
    assert_eq!(
        text(SetupError::AlreadyServed {
            db,
            lock: "/data/r.db.lock".into(),
            pid: None
        }),
        "another griot-registry server already serves /data/r.db; only one server may use a \
         database file at a time (it holds the lock on /data/r.db.lock)"
    );
}

#[test]
fn task_errors_keep_their_prefix() {
    assert_eq!(
        StoreError::Task(TaskError::WriterStopped).to_string(),
        "database task failed: the database writer stopped"
    );
    assert_eq!(
        StoreError::Task(TaskError::WritePanicked).to_string(),
        "database task failed: a database write panicked"
    );
}
