//! The CLI's cluster commands (`fs ...`, `report`), run through the client library. Their
//! result goes to stdout; errors are returned for `main` to print.

use crate::cli::FsOp;
use crate::client::{Client, FileStatus, CHUNK_SIZE};
use crate::error::Error;
use crate::fs_error::FsError;
use crate::report;
use crate::rpc::pb::master::FileKind;
use std::io::{Read, Write};
use std::path::Path;

fn kind(s: &FileStatus) -> FileKind {
    FileKind::try_from(s.kind).unwrap_or(FileKind::File)
}

fn long_line(s: &FileStatus) -> String {
    let k = match kind(s) {
        FileKind::Directory => 'd',
        FileKind::Symlink => 'l',
        FileKind::File => '-',
        FileKind::Fifo => 'p',
        FileKind::Socket => 's',
        FileKind::CharDevice => 'c',
        FileKind::BlockDevice => 'b',
    };
    let secs = s.mtime_ms / 1000;
    let name = if kind(s) == FileKind::Symlink {
        format!("{} -> {}", s.name, s.symlink_target)
    } else {
        s.name.clone()
    };
    format!(
        "{k}{:o} {:>12} {:>12} {name}",
        s.mode & 0o7777,
        s.size,
        secs
    )
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Fs(FsError::Io(format!("{what} {}: {e}", path.display())))
}

/// Runs one `fs` command, writing its output to `out`.
pub async fn fs(client: &Client, op: &FsOp, out: &mut dyn Write) -> Result<(), Error> {
    let w = |out: &mut dyn Write, text: String| {
        out.write_all(text.as_bytes())
            .map_err(|e| Error::Fs(FsError::Io(format!("stdout: {e}"))))
    };
    match op {
        FsOp::Ls { path, long } => {
            let status = client.stat(path).await?;
            let entries = if kind(&status) == FileKind::Directory {
                client.list(path).await?
            } else {
                vec![status]
            };
            for e in entries {
                w(
                    out,
                    if *long {
                        format!("{}\n", long_line(&e))
                    } else {
                        format!("{}\n", e.name)
                    },
                )?;
            }
        }
        FsOp::Mkdir { parents, path } => {
            client.mkdir(path, *parents).await?;
        }
        FsOp::Put { local, remote } => {
            let mut input: Box<dyn Read> = if local.as_os_str() == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(local).map_err(|e| io_err("cannot open", local, e))?)
            };
            let mut writer = client.create(remote, true).await?;
            let mut buf = vec![0u8; CHUNK_SIZE];
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| io_err("cannot read", local, e))?;
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n]).await?;
            }
            writer.close().await?;
        }
        FsOp::Get { remote, local } => {
            let mut reader = client.open(remote).await?;
            let mut sink: Box<dyn Write> = if local.as_os_str() == "-" {
                Box::new(std::io::stdout())
            } else {
                Box::new(
                    std::fs::File::create(local).map_err(|e| io_err("cannot create", local, e))?,
                )
            };
            let mut buf = vec![0u8; CHUNK_SIZE];
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                sink.write_all(&buf[..n])
                    .map_err(|e| io_err("cannot write", local, e))?;
            }
            sink.flush().map_err(|e| io_err("cannot write", local, e))?;
        }
        FsOp::Cat { path } => {
            let mut reader = client.open(path).await?;
            let mut buf = vec![0u8; CHUNK_SIZE];
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])
                    .map_err(|e| Error::Fs(FsError::Io(format!("stdout: {e}"))))?;
            }
        }
        FsOp::Rm { recursive, path } => client.delete(path, *recursive).await?,
        FsOp::Mv { src, dst } => client.rename(src, dst, false).await?,
        FsOp::Stat { path } => {
            let s = client.stat(path).await?;
            let kind = format!("{:?}", kind(&s)).to_lowercase();
            w(
                out,
                format!(
                    "path: {}\nkind: {kind}\nsize: {}\nmode: {:o}\nuid: {}\ngid: {}\nmtime_ms: {}\nid: {}\nchildren: {}\ncomplete: {}\n{}",
                    s.path,
                    s.size,
                    s.mode,
                    s.uid,
                    s.gid,
                    s.mtime_ms,
                    s.id,
                    s.children,
                    s.complete,
                    if s.symlink_target.is_empty() { String::new() } else { format!("target: {}\n", s.symlink_target) }
                ),
            )?;
        }
        FsOp::Du { path } => {
            let (bytes, files, dirs) = du(client, path).await?;
            w(
                out,
                format!("{bytes}\t{files} files\t{dirs} directories\t{path}\n"),
            )?;
        }
    }
    Ok(())
}

/// Bytes, files and directories under a path (iterative, so deep trees are fine).
async fn du(client: &Client, path: &str) -> Result<(u64, u64, u64), Error> {
    let root = client.stat(path).await?;
    if kind(&root) != FileKind::Directory {
        return Ok((root.size, 1, 0));
    }
    let (mut bytes, mut files, mut dirs) = (0, 0, 1);
    let mut stack = vec![root.path];
    while let Some(dir) = stack.pop() {
        for e in client.list(&dir).await? {
            match kind(&e) {
                FileKind::Directory => {
                    dirs += 1;
                    stack.push(e.path);
                }
                _ => {
                    files += 1;
                    bytes += e.size;
                }
            }
        }
    }
    Ok((bytes, files, dirs))
}

/// Runs `report`.
pub async fn report(client: &Client, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let r = client.report().await?;
    let text = if json {
        format!("{}\n", report::to_json(&r))
    } else {
        report::to_text(&r)
    };
    out.write_all(text.as_bytes())
        .map_err(|e| Error::Fs(FsError::Io(format!("stdout: {e}"))))
}
