//! POSIX rules on a real mount (`standalone --mnt`): hard links, special files, the
//! permission rules a FUSE file system with `default_permissions` keeps, times, names and
//! errors. Rules about permissions run as an unprivileged user: a child that drops to a
//! test uid (no supplementary groups).

use crate::fuse_mount::{config, errno_of, Mounted};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The test user, and another one.
const USER: u32 = 4242;
const OTHER: u32 = 4343;

/// A standalone cluster mounted under a fresh directory that every user may traverse.
fn mount() -> (tempfile::TempDir, Mounted) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = config(dir.path(), |t| t);
    let m = Mounted::standalone_on(dir.path(), &conf);
    (dir, m)
}

/// Runs a bash script in the mount as `uid`:`gid`.
fn as_user(m: &Mounted, uid: u32, gid: u32, script: &str) -> Output {
    Command::new("bash")
        .args(["-c", script])
        .current_dir(m.path(""))
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
}

/// Asserts the script run as `uid` fails, and that its error output says `needle`.
fn refused(m: &Mounted, uid: u32, script: &str, needle: &str) {
    let out = as_user(m, uid, uid, script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(needle),
        "{script} as {uid}: expected a failure saying {needle:?}, got {:?} {err}",
        out.status
    );
}

/// Asserts the script run as `uid` succeeds.
fn allowed(m: &Mounted, uid: u32, script: &str) {
    let out = as_user(m, uid, uid, script);
    assert!(
        out.status.success(),
        "{script} as {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn meta(m: &Mounted, rel: &str) -> std::fs::Metadata {
    std::fs::symlink_metadata(m.path(rel)).unwrap()
}

/// The status change time in nanoseconds.
fn ctime(m: &Mounted, rel: &str) -> i64 {
    let md = meta(m, rel);
    md.ctime() * 1_000_000_000 + md.ctime_nsec()
}

/// The modification time in nanoseconds.
fn mtime(m: &Mounted, rel: &str) -> i64 {
    let md = meta(m, rel);
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

/// Lets the clock pass the millisecond the times are kept in, so a change shows.
fn tick() {
    std::thread::sleep(Duration::from_millis(5));
}

#[test]
fn hard_links_share_the_inode_and_count_names() {
    let (_dir, m) = mount();
    std::fs::write(m.path("a"), b"data").unwrap();
    let before = ctime(&m, "a");
    tick();
    std::fs::hard_link(m.path("a"), m.path("b")).unwrap();
    let (a, b) = (meta(&m, "a"), meta(&m, "b"));
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    assert!(ctime(&m, "a") > before, "link changes the file's ctime");
    std::fs::remove_file(m.path("a")).unwrap();
    assert_eq!(std::fs::read(m.path("b")).unwrap(), b"data");
    assert_eq!(meta(&m, "b").nlink(), 1);
    // Attributes are the inode's: a chmod through one name shows through the other.
    std::fs::hard_link(m.path("b"), m.path("c")).unwrap();
    std::fs::set_permissions(m.path("c"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(meta(&m, "b").mode() & 0o777, 0o600);
    std::fs::create_dir(m.path("d")).unwrap();
    let e = std::fs::hard_link(m.path("d"), m.path("d2")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EPERM, "{e}");
    let e = std::fs::hard_link(m.path("b"), m.path("c")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EEXIST, "{e}");
    // A directory's count is 2 and its subdirectories.
    m.ok("mkdir -p d/x d/y && touch d/f");
    assert_eq!(meta(&m, "d").nlink(), 4);
    m.ok("rmdir d/y");
    assert_eq!(meta(&m, "d").nlink(), 3);
    // A directory moved to another parent moves its count with it.
    m.ok("mkdir e && mv d/x e/x");
    assert_eq!((meta(&m, "d").nlink(), meta(&m, "e").nlink()), (2, 3));
    m.ok("mv e/x d/x");
    // Files made with the tools programs use.
    m.ok("ln b d/x/b3 && test \"$(stat -c %h b)\" = 3 && cp -al d d-copy && test -f d-copy/x/b3");
    assert_eq!(meta(&m, "b").nlink(), 4);
}

#[test]
fn special_files_are_names_with_attributes() {
    let (_dir, m) = mount();
    m.ok("mkfifo p && mknod c c 1 3 && mknod b b 8 1");
    m.ok("python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"s\")'");
    let kinds = m.ok("stat -c '%n %F %t:%T' p c b s");
    assert_eq!(
        kinds,
        "p fifo 0:0\nc character special file 1:3\nb block special file 8:1\ns socket 0:0\n"
    );
    // A FIFO carries data between two processes (the kernel serves it).
    assert_eq!(m.ok("(echo through > p &) ; timeout 10 cat p"), "through\n");
    // Every operation on them.
    m.ok("chmod 600 p && chown 4242:4242 p && mv p p2 && ln p2 p3 && python3 -c 'import os; os.utime(\"p2\", (1000000000, 1000000000))'");
    let md = meta(&m, "p3");
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.nlink(), md.mtime()),
        (0o600, 4242, 2, 1_000_000_000)
    );
    m.ok("rm p3 c b s && test -p p2");
    // The mount is nodev: a device node cannot be opened.
    m.ok("mknod null c 1 3");
    assert!(std::fs::File::open(m.path("null")).is_err());
}

#[test]
fn permission_rules_hold_for_unprivileged_users() {
    let (_dir, m) = mount();
    m.ok("mkdir pub home sg && chmod 1777 pub && chown 4242:4242 home && chgrp 500 sg && chmod 2777 sg");
    // The sticky bit: only the owner removes or renames a file in the directory.
    allowed(&m, OTHER, "echo x > pub/others");
    refused(&m, USER, "rm -f pub/others", "Operation not permitted");
    refused(
        &m,
        USER,
        "mv pub/others pub/mine",
        "Operation not permitted",
    );
    allowed(
        &m,
        OTHER,
        "mv pub/others pub/renamed && rm pub/renamed && mkdir pub/odir",
    );
    refused(&m, USER, "rmdir pub/odir", "Operation not permitted");
    allowed(&m, OTHER, "rmdir pub/odir");
    // chown and chgrp by the owner to someone else, or a group it is not in: refused.
    allowed(&m, USER, "echo y > home/f && chmod 4755 home/f");
    refused(&m, USER, "chown 4343 home/f", "Operation not permitted");
    refused(&m, USER, "chgrp 500 home/f", "Operation not permitted");
    refused(&m, OTHER, "chmod 777 home/f", "Operation not permitted");
    // chown clears set-user-ID (even by root).
    m.ok("chown 4343 home/f");
    assert_eq!(meta(&m, "home/f").mode() & 0o7777, 0o755);
    // A write by a non-owner clears set-user-ID.
    m.ok("echo x > pub/suid && chmod 4777 pub/suid");
    allowed(&m, USER, "echo more >> pub/suid");
    assert_eq!(meta(&m, "pub/suid").mode() & 0o7777, 0o777);
    // A set-group-ID directory gives its group, and the bit to new directories.
    allowed(&m, USER, "touch sg/f && mkdir sg/d");
    let (f, d) = (meta(&m, "sg/f"), meta(&m, "sg/d"));
    assert_eq!((f.uid(), f.gid()), (USER, 500));
    assert_eq!((d.gid(), d.mode() & 0o2000), (500, 0o2000));
    // utimensat: a writer may set the times to now, only the owner to a given time.
    m.ok("echo t > pub/t && chmod 666 pub/t");
    allowed(&m, USER, "touch pub/t");
    refused(
        &m,
        USER,
        "touch -d @1000000000 pub/t",
        "Operation not permitted",
    );
    m.ok("chown 4242 pub/t");
    allowed(&m, USER, "touch -d @1000000000 pub/t");
    assert_eq!(meta(&m, "pub/t").mtime(), 1_000_000_000);
    // Reading and writing follow the mode bits.
    m.ok("echo secret > home/private && chmod 600 home/private");
    refused(&m, OTHER, "cat home/private", "Permission denied");
}

#[test]
fn times_change_with_every_change_and_only_then() {
    let (_dir, m) = mount();
    m.ok("mkdir d && echo data > d/f");
    let mut last = ctime(&m, "d/f");
    // Each change, and the name the file has after it.
    for (script, name) in [
        ("chmod 600 d/f", "d/f"),
        ("chown 4242 d/f", "d/f"),
        ("ln d/f d/g", "d/f"),
        ("rm d/g", "d/f"),
        ("mv d/f d/h", "d/h"),
        ("truncate -s 2 d/h", "d/h"),
        ("echo more >> d/h", "d/h"),
    ] {
        tick();
        m.ok(script);
        let now = ctime(&m, name);
        assert!(now > last, "{script} changes the ctime");
        last = now;
    }
    // The parent's mtime and ctime change on create, unlink, rename and rmdir in it.
    for script in [
        "touch d/new",
        "rm d/new",
        "mv d/h d/i",
        "mkdir d/sub",
        "rmdir d/sub",
    ] {
        let (m0, c0) = (mtime(&m, "d"), ctime(&m, "d"));
        tick();
        m.ok(script);
        assert!(
            mtime(&m, "d") > m0 && ctime(&m, "d") > c0,
            "{script} changes the directory's times"
        );
    }
    // A failed call changes nothing.
    let (m0, c0) = (mtime(&m, "d"), ctime(&m, "d"));
    tick();
    assert!(!m.sh("mkdir d/i").status.success());
    assert!(!m.sh("rmdir d/nope").status.success());
    assert_eq!((mtime(&m, "d"), ctime(&m, "d")), (m0, c0));
}

#[test]
fn names_and_errors_are_those_of_a_local_disk() {
    let (_dir, m) = mount();
    let long = "n".repeat(256);
    let e = std::fs::write(m.path(&long), b"x").unwrap_err();
    assert_eq!(errno_of(&e), libc::ENAMETOOLONG, "{e}");
    std::fs::write(m.path(&long[..255]), b"x").unwrap();
    m.ok("mkdir -p a/b full/x && touch file");
    let cases: [(&str, &str, i32); 4] = [
        ("a", "a/b/c", libc::EINVAL),
        ("a", "full", libc::ENOTEMPTY),
        ("file", "a", libc::EISDIR),
        ("a", "file", libc::ENOTDIR),
    ];
    for (from, to, errno) in cases {
        let e = std::fs::rename(m.path(from), m.path(to)).unwrap_err();
        assert_eq!(errno_of(&e), errno, "rename {from} {to}: {e}");
    }
    let e = std::fs::create_dir(m.path("a")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EEXIST, "{e}");
    m.ok("ln -s loop2 loop1 && ln -s loop1 loop2");
    let e = std::fs::read(m.path("loop1")).unwrap_err();
    assert_eq!(errno_of(&e), libc::ELOOP, "{e}");
    let e = std::fs::read(m.path("file/x")).unwrap_err();
    assert_eq!(errno_of(&e), libc::ENOTDIR, "{e}");
    assert!(Path::new(&m.path("a/b")).is_dir());
}

#[test]
fn extended_attributes_and_fallocate_work_for_tools() {
    let (_dir, m) = mount();
    m.ok("echo data > f && mkdir d && mkfifo p");
    let script = r#"
import errno, os
os.setxattr("f", "user.origin", b"s3://bucket/key")
os.setxattr("f", "security.label", b"x", os.XATTR_CREATE)
os.setxattr("d", "user.dir", b"1")
assert os.getxattr("f", "user.origin") == b"s3://bucket/key"
assert sorted(os.listxattr("f")) == ["security.label", "user.origin"], os.listxattr("f")
def fails(code, f, *args):
    try:
        f(*args)
    except OSError as e:
        assert e.errno == code, (e, code)
    else:
        raise AssertionError(f"{args} should fail with {errno.errorcode[code]}")
fails(errno.EEXIST, os.setxattr, "f", "user.origin", b"v", os.XATTR_CREATE)
fails(errno.ENODATA, os.setxattr, "f", "user.none", b"v", os.XATTR_REPLACE)
fails(errno.ENODATA, os.getxattr, "f", "user.none")
fails(errno.EOPNOTSUPP, os.setxattr, "f", "trusted.t", b"v")
fails(errno.E2BIG, os.setxattr, "f", "user.big", b"v" * 65537)
fails(errno.ERANGE, os.setxattr, "f", "user." + "n" * 251, b"v")
fails(errno.EPERM, os.setxattr, "p", "user.fifo", b"v")
os.removexattr("f", "user.origin")
fails(errno.ENODATA, os.removexattr, "f", "user.origin")
assert os.listxattr("f") == ["security.label"]
print("ok")
"#;
    assert_eq!(
        m.ok(&format!("python3 -c '{}'", script.replace('\'', "'\\''"))),
        "ok\n"
    );
    // fallocate: mode 0 extends (reads as zeros), KEEP_SIZE keeps the length.
    m.ok("fallocate -l 1048576 f && test \"$(stat -c %s f)\" = 1048576");
    m.ok("fallocate -n -o 0 -l 4194304 f && test \"$(stat -c %s f)\" = 1048576");
    assert_eq!(m.ok("head -c 5 f"), "data\n");
    assert_eq!(m.ok("tail -c +6 f | tr -d '\\0' | wc -c"), "0\n");
    assert!(
        !m.sh("fallocate -p -o 0 -l 10 f").status.success(),
        "punching holes is not supported"
    );
}

#[test]
fn a_file_unlinked_while_open_lives_until_the_last_close() {
    let (_dir, m) = mount();
    let script = r#"
import os
# The temp-file pattern: create, unlink, then use it through the descriptor.
fd = os.open("tmp", os.O_CREAT | os.O_RDWR, 0o600)
os.unlink("tmp")
assert not os.path.exists("tmp")
os.write(fd, b"scratch" * 1000)
assert os.pread(fd, 7, 7000 - 7) == b"scratch"
st = os.fstat(fd)
assert (st.st_nlink, st.st_size) == (0, 7000), st
os.close(fd)
# A committed file opened, then unlinked: its data stays readable.
with open("kept", "wb") as f:
    f.write(b"committed")
fd = os.open("kept", os.O_RDONLY)
os.unlink("kept")
assert os.read(fd, 64) == b"committed"
assert os.fstat(fd).st_nlink == 0
os.close(fd)
print("ok")
"#;
    assert_eq!(m.ok(&format!("python3 -c '{script}'")), "ok\n");
}
