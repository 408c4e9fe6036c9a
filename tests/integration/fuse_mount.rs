//! The FUSE client on a real mount: `curvine-fluid standalone --mnt` (and separate master,
//! worker and client processes) driven by ordinary programs. Needs root and /dev/fuse;
//! without them these tests fail, they never skip.

use crate::cli_cluster::{loopback_conf, terminate};
use crate::cluster::{pattern, random_ranges};
use crate::harness::{wait_until, KillOnDrop};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A process serving a mount, stopped (and the mount removed) on drop.
pub(crate) struct Mounted {
    child: Option<Child>,
    mnt: PathBuf,
    log: PathBuf,
}

/// A loopback cluster config under `dir`, with `edit` applied to its text.
pub(crate) fn config(dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let conf = dir.join("c.toml");
    loopback_conf(&conf, &dir.join("data"));
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, edit(text)).unwrap();
    conf
}

pub(crate) fn spawn(conf: &Path, args: &[&str], log: &Path) -> Child {
    spawn_env(conf, args, log, &[])
}

/// [`spawn`] with `env` set (the rest of the environment is cleared but `PATH`).
pub(crate) fn spawn_env(conf: &Path, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
        .arg("--conf")
        .arg(conf)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn is_mounted(mnt: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&mnt.to_str().unwrap()) && l.contains(" - fuse.curvinefs ")
    })
}

impl Mounted {
    /// Waits until the mount answers (bounded), failing with the process log.
    fn wait(child: Child, mnt: &Path, log: &Path) -> Mounted {
        let mut m = Mounted {
            child: Some(child),
            mnt: mnt.to_path_buf(),
            log: log.to_path_buf(),
        };
        let mounted = wait_until(Duration::from_secs(60), || {
            if is_mounted(mnt) && std::fs::read_dir(mnt).is_ok() {
                return true;
            }
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("exited {status} before mounting:\n{}", m.log_text());
            }
            false
        });
        assert!(
            mounted,
            "no mount at {} within 60 s:\n{}",
            mnt.display(),
            m.log_text()
        );
        m
    }

    /// `standalone --mnt` with its config under `dir`.
    pub(crate) fn standalone(dir: &Path, edit: impl FnOnce(String) -> String) -> Mounted {
        let conf = config(dir, edit);
        Self::standalone_on(dir, &conf)
    }

    pub(crate) fn standalone_on(dir: &Path, conf: &Path) -> Mounted {
        let mnt = dir.join("mnt");
        let log = dir.join(format!("standalone-{}.log", stamp()));
        let child = spawn(
            conf,
            &[
                "standalone",
                "--data-dir",
                dir.join("data").to_str().unwrap(),
                "--mnt",
                mnt.to_str().unwrap(),
            ],
            &log,
        );
        Self::wait(child, &mnt, &log)
    }

    /// `client start` mounting at `mnt` with the cluster in `conf`, plus `fuse` keys.
    pub(crate) fn client(conf: &Path, mnt: &Path, fuse: &str) -> Mounted {
        Self::client_env(conf, mnt, fuse, &[])
    }

    /// [`Mounted::client`] with `env` set in the client's environment.
    pub(crate) fn client_env(conf: &Path, mnt: &Path, fuse: &str, env: &[(&str, &str)]) -> Mounted {
        let dir = conf.parent().unwrap();
        let own = dir.join(format!("client-{}.toml", stamp()));
        let text = std::fs::read_to_string(conf).unwrap();
        std::fs::write(
            &own,
            format!("{text}\n[fuse]\nmnt_path = \"{}\"\n{fuse}\n", mnt.display()),
        )
        .unwrap();
        let log = dir.join(format!("client-{}.log", stamp()));
        let child = spawn_env(&own, &["client", "start"], &log, env);
        Self::wait(child, mnt, &log)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Runs a bash script in the mount; returns its output.
    pub(crate) fn sh(&self, script: &str) -> Output {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(&self.mnt)
            .output()
            .unwrap()
    }

    /// Runs a bash script in the mount and asserts it succeeds; returns stdout.
    pub(crate) fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "script failed: {script}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM; returns the exit status and how long the exit took.
    pub(crate) fn stop(mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        let status = terminate(&mut child);
        (status, started.elapsed())
    }

    /// SIGKILL: the mount stays behind, dead.
    fn crash(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        std::mem::forget(self);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            // Killed below if it did not stop in time.
            let _ = wait_until(Duration::from_secs(30), || {
                child.try_wait().ok().flatten().is_some()
            });
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

fn stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub(crate) fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

#[test]
fn the_test_pod_script_and_everyday_tools_work() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::standalone(dir.path(), |t| t);
    // The Curvine samples' test pod: write, read, mkdir, list several files.
    let out = m.ok(
        "echo 'hello curvine' > hello.txt; cat hello.txt; mkdir -p dir1/dir2; \
         for i in 1 2 3 4 5; do echo file-$i > dir1/f$i.txt; done; ls dir1 | sort | tr '\\n' ' '",
    );
    assert_eq!(
        out,
        "hello curvine\ndir2 f1.txt f2.txt f3.txt f4.txt f5.txt "
    );
    assert_eq!(
        std::fs::read_to_string(m.path("dir1/f3.txt")).unwrap(),
        "file-3\n"
    );

    // cp -r of a source tree, diff -r; tar round trip.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    m.ok(&format!(
        "cp -r {} tree && diff -r {} tree",
        src.display(),
        src.display()
    ));
    let back = dir.path().join("untarred");
    std::fs::create_dir(&back).unwrap();
    m.ok(&format!(
        "tar -C {} -cf archive.tar . && tar -C {} -xf archive.tar && diff -r {} {}",
        src.display(),
        back.display(),
        src.display(),
        back.display()
    ));

    // rename over an existing file; RENAME_NOREPLACE refuses.
    m.ok("echo old > a; echo new > b; mv -f b a; test \"$(cat a)\" = new; test ! -e b");
    m.ok("echo x > c");
    let noreplace = unsafe {
        let from = std::ffi::CString::new(m.path("c").to_str().unwrap()).unwrap();
        let to = std::ffi::CString::new(m.path("a").to_str().unwrap()).unwrap();
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!(noreplace, -1);
    assert_eq!(errno_of(&std::io::Error::last_os_error()), libc::EEXIST);

    // rm -rf of a deep tree.
    m.ok("mkdir -p deep/$(printf 'd%.0s/' $(seq 1 30)); touch deep/x; for i in $(seq 1 20); do echo $i > deep/d/f$i; done; rm -rf deep; test ! -e deep");

    // chmod, chown, touch -d, a symlink, df.
    m.ok("echo data > attrs; chmod 640 attrs; chown 1234:2345 attrs; touch -d '2021-03-04 05:06:07 UTC' attrs");
    let meta = std::fs::metadata(m.path("attrs")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (1234, 2345));
    assert_eq!(meta.mtime(), 1_614_834_367);
    std::os::unix::fs::symlink("attrs", m.path("link")).unwrap();
    assert_eq!(
        std::fs::read_link(m.path("link")).unwrap(),
        Path::new("attrs")
    );
    assert_eq!(std::fs::read_to_string(m.path("link")).unwrap(), "data\n");
    let df = m.ok("df --output=fstype,size . | tail -1");
    assert!(df.starts_with("fuse.curvinefs"), "{df}");
    let size: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(size > 0, "df shows the workers' capacity: {df}");

    // Errors map to errno.
    let e = std::fs::read(m.path("missing")).unwrap_err();
    assert_eq!(errno_of(&e), libc::ENOENT);
    let e = std::fs::create_dir(m.path("dir1")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EEXIST);
    let e = std::fs::remove_dir(m.path("dir1")).unwrap_err();
    assert_eq!(errno_of(&e), libc::ENOTEMPTY);
    let e = std::fs::File::create(m.path("hello.txt/x")).unwrap_err();
    assert_eq!(errno_of(&e), libc::ENOTDIR);
    let e = std::fs::read(m.path("dir1")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EISDIR);
    let e = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.path("hello.txt"))
        .unwrap_err();
    assert_eq!(errno_of(&e), libc::EEXIST);

    let (status, took) = m.stop();
    assert!(status.success(), "exit {status}");
    assert!(took < Duration::from_secs(30));
    assert!(!is_mounted(&dir.path().join("mnt")), "unmounted at exit");
}

#[test]
fn appends_overwrites_truncates_and_sparse_files_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::standalone(dir.path(), |t| t);
    write_patterns(&m);
}

#[test]
fn the_same_with_the_kernel_write_back_cache() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::standalone(dir.path(), |t| t + "\n[fuse]\nwrite_back_cache = true\n");
    write_patterns(&m);
}

#[test]
fn the_mount_gets_the_configured_read_ahead_window() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::standalone(dir.path(), |t| t + "\n[fuse]\nmax_readahead_kb = 2048\n");
    let entry = curvine_fluid::fuse::mount_table::top_fuse_mount(&dir.path().join("mnt"))
        .unwrap()
        .expect("a FUSE mount at the target");
    let file = curvine_fluid::fuse::readahead::sysfs_path(&entry.device);
    let window = || std::fs::read_to_string(&file).unwrap_or_default();
    // The log line follows the write to sysfs: wait for both.
    assert!(
        wait_until(Duration::from_secs(10), || window().trim() == "2048"
            && m.log_text().contains("kernel read-ahead window set")),
        "{} holds {:?}:\n{}",
        file.display(),
        window(),
        m.log_text()
    );
    // A file larger than the window reads back whole through it.
    let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(m.path("big"), &data).unwrap();
    assert!(std::fs::read(m.path("big")).unwrap() == data);
}

/// Appends, overwrites, truncates, sparse files and random ranges, checked byte for byte.
fn write_patterns(m: &Mounted) {
    let p = m.path("f");

    // Append in several opens, as a log would.
    for i in 0..20 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        writeln!(f, "line {i}").unwrap();
    }
    let want: String = (0..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), want);

    // Overwrite a range in the middle, then read it all back.
    let mut expect = want.clone().into_bytes();
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(10)).unwrap();
        f.write_all(b"OVERWRITE").unwrap();
    }
    expect[10..19].copy_from_slice(b"OVERWRITE");
    assert_eq!(std::fs::read(&p).unwrap(), expect);

    // Truncate then write; truncate to extend reads zeros.
    m.ok("printf 0123456789 > t; truncate -s 4 t; printf AB >> t; truncate -s 8 t");
    assert_eq!(std::fs::read(m.path("t")).unwrap(), b"0123AB\0\0");
    m.ok("printf abc > t2; : > t2; printf xyz >> t2");
    assert_eq!(std::fs::read(m.path("t2")).unwrap(), b"xyz");

    // A sparse file: data after a hole of 10 MiB.
    {
        let mut f = std::fs::File::create(m.path("sparse")).unwrap();
        f.seek(SeekFrom::Start(10 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
    }
    let data = std::fs::read(m.path("sparse")).unwrap();
    assert_eq!(data.len(), (10 << 20) + 4);
    assert!(data[..10 << 20].iter().all(|b| *b == 0));
    assert_eq!(&data[10 << 20..], b"tail");

    // Random ranges of a 40 MiB file through pread.
    let big = pattern(40 << 20, 7);
    std::fs::write(m.path("big"), &big).unwrap();
    let f = std::fs::File::open(m.path("big")).unwrap();
    for (off, len) in random_ranges(big.len() as u64, 1..(300 << 10) + 1, 100, 99) {
        let mut buf = vec![0u8; len];
        let n = std::os::unix::fs::FileExt::read_at(&f, &mut buf, off).unwrap();
        let end = (off as usize + len).min(big.len());
        assert_eq!(&buf[..n], &big[off as usize..end], "range {off}+{len}");
    }
}

#[test]
fn a_gibibyte_written_with_dd_checks_out_and_readers_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::standalone(dir.path(), |t| t);
    let local = dir.path().join("local.bin");
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "head -c 1073741824 /dev/urandom > {l} && dd if={l} of={mnt}/big bs=1M conv=fsync status=none && \
                 sha256sum < {l} | cut -d' ' -f1 && sha256sum < {mnt}/big | cut -d' ' -f1",
                l = local.display(),
                mnt = m.mnt.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sums = String::from_utf8_lossy(&out.stdout);
    let sums: Vec<&str> = sums.lines().collect();
    assert_eq!(sums.len(), 2);
    assert_eq!(
        sums[0], sums[1],
        "sha256 of the 1 GiB file through the mount"
    );
    std::fs::remove_file(&local).unwrap();

    // Four readers of four files at once, each checking its own pattern.
    for i in 0..4u64 {
        std::fs::write(m.path(&format!("r{i}")), pattern(24 << 20, i)).unwrap();
    }
    let readers: Vec<_> = (0..4u64)
        .map(|i| {
            let p = m.path(&format!("r{i}"));
            std::thread::spawn(move || {
                let mut got = Vec::new();
                std::fs::File::open(&p)
                    .unwrap()
                    .read_to_end(&mut got)
                    .unwrap();
                assert!(got == pattern(24 << 20, i), "reader {i} got wrong bytes");
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    drop(m);
}

#[test]
fn another_client_sees_closed_files_and_a_read_only_mount_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| t);
    let a = Mounted::standalone_on(dir.path(), &conf);
    let b = Mounted::client(&conf, &dir.path().join("mnt-b"), "");
    let ro = Mounted::client(&conf, &dir.path().join("mnt-ro"), "readonly = true");

    let data = pattern(3 << 20, 11);
    {
        let mut f = std::fs::File::create(a.path("shared.bin")).unwrap();
        f.write_all(&data).unwrap();
        // Not yet closed: the other client may see an empty file, never a torn one.
        let seen = std::fs::read(b.path("shared.bin")).unwrap_or_default();
        assert!(seen.is_empty() || seen == data);
    }
    let seen = std::fs::read(b.path("shared.bin")).unwrap();
    assert!(
        seen == data,
        "b read {} bytes of {}",
        seen.len(),
        data.len()
    );
    std::fs::create_dir(b.path("from-b")).unwrap();
    std::fs::write(b.path("from-b/x"), b"written by b").unwrap();
    assert_eq!(std::fs::read(a.path("from-b/x")).unwrap(), b"written by b");

    assert_eq!(std::fs::read(ro.path("from-b/x")).unwrap(), b"written by b");
    for e in [
        std::fs::write(ro.path("new"), b"x").unwrap_err(),
        std::fs::create_dir(ro.path("d")).unwrap_err(),
        std::fs::remove_file(ro.path("shared.bin")).unwrap_err(),
    ] {
        assert_eq!(errno_of(&e), libc::EROFS, "{e}");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounts
        .lines()
        .any(|l| l.contains("mnt-ro") && l.contains(" ro,")));

    // A mount of a sub-directory (fuse.fs_path, as a ThinRuntime dataset path gives): its
    // root is that directory; a missing one is created.
    let sub = Mounted::client(&conf, &dir.path().join("mnt-sub"), "fs_path = \"/from-b\"");
    assert_eq!(std::fs::read(sub.path("x")).unwrap(), b"written by b");
    std::fs::create_dir(sub.path("inner")).unwrap();
    std::fs::write(sub.path("inner/y"), b"via sub").unwrap();
    assert_eq!(std::fs::read(a.path("from-b/inner/y")).unwrap(), b"via sub");
    let names: Vec<String> = std::fs::read_dir(sub.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let fresh = Mounted::client(
        &conf,
        &dir.path().join("mnt-new"),
        "fs_path = \"/made/for/me\"",
    );
    assert!(std::fs::read_dir(fresh.path("")).unwrap().next().is_none());
    assert!(a.path("made/for/me").is_dir());
    drop((fresh, sub, ro, b, a));
}

/// A ThinRuntime Dataset of several mounts (`fuse.mounts`): the root shows one directory
/// per mount, each its cluster directory; the root is fixed, a read-only mount refuses
/// changes, and a move between mounts is EXDEV (mv copies).
#[test]
fn several_dataset_mounts_show_as_directories_of_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| t);
    let a = Mounted::standalone_on(dir.path(), &conf);
    a.ok("mkdir -p sets/train sets/val && echo t > sets/train/t.txt && echo v > sets/val/v.txt");
    let view = Mounted::client(
        &conf,
        &dir.path().join("mnt-view"),
        "mounts = [\n { path = \"/train\", fs_path = \"/sets/train\" },\n { path = \"/val\", fs_path = \"/sets/val\", read_only = true },\n { path = \"/new\", fs_path = \"/made/by/view\" },\n]",
    );
    let mut names: Vec<String> = std::fs::read_dir(view.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["new", "train", "val"]);
    assert_eq!(view.ok("cat train/t.txt val/v.txt"), "t\nv\n");
    assert!(
        a.path("made/by/view").is_dir(),
        "a missing directory is made"
    );
    std::fs::write(view.path("train/w.txt"), b"from view").unwrap();
    assert_eq!(
        std::fs::read(a.path("sets/train/w.txt")).unwrap(),
        b"from view"
    );
    for e in [
        std::fs::write(view.path("val/x"), b"x").unwrap_err(),
        std::fs::create_dir(view.path("top")).unwrap_err(),
        std::fs::remove_dir(view.path("new")).unwrap_err(),
    ] {
        assert_eq!(errno_of(&e), libc::EROFS, "{e}");
    }
    let e = std::fs::rename(view.path("train/w.txt"), view.path("new/w.txt")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EXDEV, "{e}");
    let e = std::fs::hard_link(view.path("train/w.txt"), view.path("new/w.txt")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EXDEV, "a hard link between mounts: {e}");
    view.ok("mv train/w.txt new/w.txt");
    assert_eq!(
        std::fs::read(a.path("made/by/view/w.txt")).unwrap(),
        b"from view"
    );
    assert!(!a.path("sets/train/w.txt").exists());
    drop((view, a));
}

#[test]
fn a_stopped_master_gives_eio_within_the_client_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| {
        t.replace(
            "[client]\n",
            "[client]\nrpc_retry_max_duration_ms = 3000\nrpc_timeout_ms = 1000\n",
        )
    });
    let mut master = KillOnDrop(spawn(
        &conf,
        &["master", "start"],
        &dir.path().join("master.log"),
    ));
    let mut worker = KillOnDrop(spawn(
        &conf,
        &["worker", "start"],
        &dir.path().join("worker.log"),
    ));
    let m = Mounted::client(
        &conf,
        &dir.path().join("mnt"),
        "attr_timeout_ms = 0\nentry_timeout_ms = 0",
    );
    std::fs::write(m.path("before"), b"x").unwrap();
    master.0.kill().unwrap();
    master.0.wait().unwrap();

    let started = Instant::now();
    let e = std::fs::metadata(m.path("before")).unwrap_err();
    let took = started.elapsed();
    assert_eq!(errno_of(&e), libc::EIO, "{e}");
    assert!(took < Duration::from_secs(15), "answered after {took:?}");
    let e = std::fs::write(m.path("after"), b"y").unwrap_err();
    assert_eq!(errno_of(&e), libc::EIO, "{e}");

    let (status, took) = m.stop();
    assert!(status.success(), "client exit {status}");
    assert!(took < Duration::from_secs(30));
    terminate(&mut worker.0);
}

#[test]
fn a_restart_on_top_of_a_dead_mount_recovers_and_sigterm_unmounts_with_open_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| t);
    let m = Mounted::standalone_on(dir.path(), &conf);
    std::fs::write(m.path("kept"), b"survives restarts").unwrap();
    let mnt = m.mnt.clone();
    m.crash();
    let e = std::fs::read_dir(&mnt).unwrap_err();
    assert_eq!(
        errno_of(&e),
        libc::ENOTCONN,
        "a dead mount is left behind: {e}"
    );

    let m = Mounted::standalone_on(dir.path(), &conf);
    let log = m.log_text();
    assert!(
        log.contains("detached a dead fuse.curvinefs mount"),
        "no detach logged:\n{log}"
    );
    assert_eq!(std::fs::read(m.path("kept")).unwrap(), b"survives restarts");

    // An open file does not keep SIGTERM from unmounting and exiting 0.
    let mut held = std::fs::File::create(m.path("held")).unwrap();
    held.write_all(b"in flight").unwrap();
    let (status, took) = m.stop();
    assert!(status.success(), "exit {status}");
    assert!(took < Duration::from_secs(30), "exit took {took:?}");
    assert!(!is_mounted(&mnt));
    drop(held);

    // umount is idempotent.
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
            .args(["umount", mnt.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The file written before SIGTERM was committed.
    let m = Mounted::standalone_on(dir.path(), &conf);
    assert_eq!(std::fs::read(m.path("held")).unwrap(), b"in flight");
    drop(m);
}

#[test]
fn a_mount_target_that_is_a_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| t);
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"keep me").unwrap();
    let out = crate::harness::run_binary(
        &[
            "--conf",
            conf.to_str().unwrap(),
            "standalone",
            "--mnt",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("fuse.mnt_path is not a directory"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn client_healthz_is_ready_only_when_the_mount_answers() {
    use crate::cli_cluster::{free_port, http_get};
    let dir = tempfile::tempdir().unwrap();
    // Masters that do not exist yet: the client waits, and /healthz says why.
    let nowhere = free_port();
    let waiting_port = free_port();
    let lonely = dir.path().join("lonely.toml");
    std::fs::write(
        &lonely,
        format!(
            "[client]\nmaster_addrs = [{{ hostname = \"127.0.0.1\", port = {nowhere} }}]\n\
             [fuse]\nmnt_path = \"{}\"\nweb_port = {waiting_port}\n",
            dir.path().join("mnt-wait").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("waiting.log");
    let mut waiting = KillOnDrop(spawn(&lonely, &["client", "start"], &log));
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("looking up the mounted directory")
        }),
        "client did not start"
    );
    let (code, body) = http_get(waiting_port, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not mounted yet"), "{body}");
    assert!(terminate(&mut waiting.0).success());

    // A running cluster: ready once the mount answers.
    let m = Mounted::standalone(dir.path(), |t| t);
    let conf = dir.path().join("c.toml");
    let port = free_port();
    let client = Mounted::client(
        &conf,
        &dir.path().join("mnt-b"),
        &format!("web_port = {port}"),
    );
    let mut last = (0, String::new());
    assert!(
        wait_until(Duration::from_secs(10), || {
            last = http_get(port, "/healthz");
            last.0 == 200
        }),
        "/healthz never became 200: {} {}",
        last.0,
        last.1
    );
    let (_, overview) = http_get(port, "/api/overview");
    let doc: serde_json::Value = serde_json::from_str(&overview).unwrap();
    assert_eq!(doc["state"], "mounted", "{doc}");
    assert_eq!(doc["role"], "client");
    let (_, metrics) = http_get(port, "/metrics");
    assert!(
        metrics.contains("curvine_fuse_mount_answering 1"),
        "{metrics}"
    );
    let (status, _) = client.stop();
    assert!(status.success());
    drop(m);
}

/// A client killed while the kernel still holds its root's attributes (a long
/// `attr_timeout`): `stat` of the dead mount still answers from that cache, so the restart
/// must not take the mount for a live one (found by the Docker e2e test).
#[test]
fn a_restart_right_after_a_crash_is_not_fooled_by_cached_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| t);
    let m = Mounted::standalone_on(dir.path(), &conf);
    let mnt = dir.path().join("mnt-c");
    let fuse = "attr_timeout_ms = 60000\nentry_timeout_ms = 60000";
    let c = Mounted::client(&conf, &mnt, fuse);
    std::fs::write(c.path("f"), b"one").unwrap();
    // A stat of the root caches its attributes (as the client's own health probe does).
    // Twice, a moment apart: on a loaded machine this test once found the root uncached
    // right after a single stat (something of the write above, such as its asynchronous
    // release, still in flight); the second stat caches the settled attributes.
    std::fs::metadata(&mnt).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::metadata(&mnt).unwrap();
    c.crash();
    assert!(
        std::fs::metadata(&mnt).is_ok(),
        "the kernel no longer caches the root's attributes; this test cannot show the case"
    );
    let c = Mounted::client(&conf, &mnt, fuse);
    let log = c.log_text();
    assert!(
        log.contains("detached a dead fuse.curvinefs mount"),
        "{log}"
    );
    assert_eq!(std::fs::read(c.path("f")).unwrap(), b"one");
    drop(c);
    drop(m);
}

/// Fluid binds the host directory at exactly the target (hostPath, Bidirectional): the
/// client mounts on top of that bind, and `umount` (the preStop) removes only the FUSE
/// mount, leaving the bind (found by a review of the manifests).
#[test]
fn a_bind_at_the_target_is_mounted_over_and_left_by_umount() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), |t| t);
    let m = Mounted::standalone_on(dir.path(), &conf);
    let host = dir.path().join("host-dir");
    let mnt = dir.path().join("mnt-bound");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    assert!(Command::new("mount")
        .arg("--bind")
        .args([&host, &mnt])
        .status()
        .unwrap()
        .success());
    // Removes the bind even when an assertion fails.
    struct Unbind(PathBuf);
    impl Drop for Unbind {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unbind = Unbind(mnt.clone());
    let types = |p: &Path| -> Vec<String> {
        curvine_fluid::fuse::mount_table::mounts_at(p)
            .unwrap()
            .into_iter()
            .map(|m| m.fs_type)
            .collect()
    };
    let c = Mounted::client(&conf, &mnt, "");
    assert_eq!(
        types(&mnt).last().map(String::as_str),
        Some("fuse.curvinefs")
    );
    std::fs::write(c.path("through"), b"fuse").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
        .args(["umount", mnt.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = types(&mnt);
    assert!(!left.iter().any(|t| t.starts_with("fuse")), "{left:?}");
    assert_eq!(left.len(), 1, "the bind is gone: {left:?}");
    assert!(
        !host.join("through").exists(),
        "the file went to the host dir, not the cluster"
    );
    drop(c);
    drop(m);
}
