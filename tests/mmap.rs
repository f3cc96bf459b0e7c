//! `serve --mmap-mib`: every reader connection maps as much of the file as
//! asked, and none maps anything by default (the mapping counts in RSS once
//! per connection, so it is opt-in).

use griot_registry::store::{Store, StoreError, StoreOptions};

/// `PRAGMA mmap_size` of each of the pool's reader connections, all held
/// at once so that each is a different connection.
fn mmap_of_every_reader(options: &StoreOptions) -> Vec<i64> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("registry.db"), options).unwrap();
    fn hold(store: &Store, left: u32, seen: &mut Vec<i64>) {
        if left == 0 {
            return;
        }
        store
            .read_blocking(|c| {
                seen.push(c.query_row("PRAGMA mmap_size", [], |r| r.get(0))?);
                hold(store, left - 1, seen);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
    let mut seen = Vec::new();
    hold(&store, options.read_connections, &mut seen);
    seen
}

#[test]
fn readers_map_nothing_by_default() {
    let options = StoreOptions::default();
    assert_eq!(mmap_of_every_reader(&options), vec![0; 8]);
}

#[test]
fn every_reader_maps_what_it_is_given() {
    let options = StoreOptions {
        read_connections: 3,
        mmap_bytes: 64 << 20,
        ..StoreOptions::default()
    };
    assert_eq!(mmap_of_every_reader(&options), vec![64 << 20; 3]);
}
