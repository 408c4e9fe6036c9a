//! The kernel's page cache across opens (`[fuse] kernel_cache`): a file that did not
//! change is read again from the cache, with no block read reaching the worker; a file
//! another client changed in place (same inode, same length) is read fresh. Real FUSE
//! mounts; needs root and /dev/fuse.

use crate::cli_cluster::http_get;
use crate::cluster::pattern;
use crate::fuse_mount::Mounted;
use std::io::{Seek, SeekFrom, Write};

/// Block reads the worker answered over gRPC (any outcome).
fn worker_reads(port: u16) -> f64 {
    let (_, text) = http_get(port, "/metrics");
    text.lines()
        .filter(|l| {
            l.starts_with("curvine_worker_rpc_requests_total{")
                && (l.contains("method=\"read_block\"") || l.contains("method=\"read_range\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn an_unchanged_file_is_read_from_the_page_cache_and_a_changed_one_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Reads go over gRPC (no short circuit), so the worker counts each one.
    let a = Mounted::standalone(dir.path(), |t| {
        t.replace("[client]\n", "[client]\nshort_circuit = false\n")
    });
    let text = std::fs::read_to_string(dir.path().join("c.toml")).expect("conf");
    let doc: toml_edit::DocumentMut = text.parse().expect("toml");
    let web = doc["worker"]["web_port"].as_integer().expect("web_port") as u16;
    let port = crate::cli_cluster::free_port();
    let b = Mounted::client(
        &dir.path().join("c.toml"),
        &dir.path().join("mnt-b"),
        &format!("web_port = {port}"),
    );

    let data = pattern(6 << 20, 31);
    std::fs::write(b.path("f.bin"), &data).expect("write through mount b");

    let first = std::fs::read(a.path("f.bin")).expect("first read through a");
    assert!(first == data, "first read differs");
    let after_first = worker_reads(web);
    assert!(after_first > 0.0, "the first read reached the worker");

    let second = std::fs::read(a.path("f.bin")).expect("second read through a");
    assert!(second == data, "second read differs");
    assert_eq!(
        worker_reads(web),
        after_first,
        "an unchanged file is read from the kernel's page cache"
    );

    // Another client rewrites 4 KiB in place: same inode, same length.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(b.path("f.bin"))
        .expect("open for writing through b");
    f.seek(SeekFrom::Start(1 << 20)).expect("seek");
    f.write_all(&[0xAB; 4096]).expect("rewrite");
    drop(f);
    let mut expected = data.clone();
    expected[1 << 20..(1 << 20) + 4096].fill(0xAB);

    let third = std::fs::read(a.path("f.bin")).expect("third read through a");
    assert_eq!(third.len(), expected.len());
    assert!(
        third == expected,
        "the change made through b is seen through a"
    );

    // With the cache off, every open reads from the worker again.
    drop(b);
    drop(a);
    let dir = tempfile::tempdir().expect("tempdir");
    let off = Mounted::standalone(dir.path(), |t| {
        t.replace("[client]\n", "[client]\nshort_circuit = false\n")
            + "[fuse]\nkernel_cache = false\n"
    });
    let text = std::fs::read_to_string(dir.path().join("c.toml")).expect("conf");
    let doc: toml_edit::DocumentMut = text.parse().expect("toml");
    let web = doc["worker"]["web_port"].as_integer().expect("web_port") as u16;
    std::fs::write(off.path("g.bin"), &data).expect("write");
    assert!(std::fs::read(off.path("g.bin")).expect("read") == data);
    let once = worker_reads(web);
    assert!(std::fs::read(off.path("g.bin")).expect("read") == data);
    assert!(
        worker_reads(web) > once,
        "kernel_cache = false drops the cache at open"
    );
}
