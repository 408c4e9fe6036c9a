//! The short-circuit socket's wire: where a worker's Unix socket lives, and messages
//! framed as a 4-byte big-endian length and a protobuf body, each able to carry one open
//! file descriptor (SCM_RIGHTS) with its first byte.
//!
//! The worker side is `worker::short_circuit`, the client side `client::short_circuit`;
//! the messages are `Local*` in `worker.proto`.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use prost::Message;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The largest message either side accepts (requests and replies are a few hundred bytes).
pub const MAX_FRAME: usize = 64 << 10;

/// The socket of the worker that clients reach at `hostname:rpc_port`, in `dir`. The name
/// is a hash of the address (a Unix socket path is limited to 107 bytes, and several
/// workers may share a node's directory); the worker's hello says who it really is.
pub fn socket_path(dir: &Path, hostname: &str, rpc_port: u16) -> PathBuf {
    dir.join(format!(
        "worker-{:016x}.sock",
        fnv1a(format!("{hostname}:{rpc_port}").as_bytes())
    ))
}

/// FNV-1a, 64 bits: a stable hash (the std hasher may change between releases, and both
/// sides of the socket, possibly different builds, must agree).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Sends `msg`, with `fd` attached to its first byte when given.
pub async fn send<M: Message>(
    stream: &UnixStream,
    msg: &M,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let body = msg.encode_to_vec();
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a {} byte message is over {MAX_FRAME}", body.len()),
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let mut sent = 0;
    while sent < frame.len() {
        stream.writable().await?;
        // The descriptor goes with the first bytes only: once some are sent, it went.
        let rights: Vec<RawFd> = match fd {
            Some(fd) if sent == 0 => vec![fd.as_raw_fd()],
            _ => Vec::new(),
        };
        let attempt = stream.try_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(&frame[sent..])];
            let cmsgs: Vec<ControlMessage<'_>> = if rights.is_empty() {
                Vec::new()
            } else {
                vec![ControlMessage::ScmRights(&rights)]
            };
            sendmsg::<()>(
                stream.as_raw_fd(),
                &iov,
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(io::Error::from)
        });
        match attempt {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Receives one message and the descriptor sent with it, if any; `None` when the peer
/// closed the connection between messages.
pub async fn recv_with_fd<M: Message + Default>(
    stream: &UnixStream,
) -> io::Result<Option<(M, Option<OwnedFd>)>> {
    recv_frame(stream, true).await
}

/// Receives one message; a descriptor sent with it is refused (the kernel closes it).
/// `None` when the peer closed the connection between messages.
pub async fn recv<M: Message + Default>(stream: &UnixStream) -> io::Result<Option<M>> {
    Ok(recv_frame(stream, false).await?.map(|(msg, _)| msg))
}

async fn recv_frame<M: Message + Default>(
    stream: &UnixStream,
    want_fd: bool,
) -> io::Result<Option<(M, Option<OwnedFd>)>> {
    let mut fd = None;
    let mut header = [0u8; 4];
    if !fill(stream, &mut header, want_fd.then_some(&mut fd), true).await? {
        return Ok(None);
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len} byte message is over {MAX_FRAME}"),
        ));
    }
    let mut body = vec![0u8; len];
    fill(stream, &mut body, want_fd.then_some(&mut fd), false).await?;
    let msg = M::decode(body.as_slice())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad message: {e}")))?;
    Ok(Some((msg, fd)))
}

/// Reads exactly `buf.len()` bytes; with `fd`, keeps there the first descriptor that
/// arrives (others are closed). Returns false on a clean end of stream before any byte
/// when `eof_ok`.
async fn fill(
    stream: &UnixStream,
    buf: &mut [u8],
    mut fd: Option<&mut Option<OwnedFd>>,
    eof_ok: bool,
) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.readable().await?;
        let attempt = stream.try_io(Interest::READABLE, || {
            receive_some(stream.as_raw_fd(), &mut buf[filled..], fd.is_some())
        });
        match attempt {
            Ok((0, _)) if filled == 0 && eof_ok => return Ok(false),
            Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok((n, fds)) => {
                filled += n;
                if let Some(slot) = fd.as_deref_mut() {
                    for received in fds {
                        if slot.is_none() {
                            *slot = Some(received);
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One `recvmsg`: the bytes read and the descriptors that came with them (owned, so they
/// close if unused). Without `want_fd` there is no room for descriptors, so the kernel
/// closes any sent.
fn receive_some(socket: RawFd, buf: &mut [u8], want_fd: bool) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        want_fd.then_some(space.as_mut_slice()),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    if !want_fd {
        // Any descriptor sent was discarded by the kernel (no room): nothing to close.
        return Ok((msg.bytes, Vec::new()));
    }
    let mut fds = Vec::new();
    let cmsgs = msg.cmsgs().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer sent more file descriptors than one",
        )
    })?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for
            // us; nothing else owns them.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::pb::worker::{LocalHello, LocalReply};
    use std::io::{Read, Seek, Write};

    #[test]
    fn socket_names_are_stable_short_and_differ_by_address() {
        let dir = Path::new("/run/curvine");
        let a = socket_path(dir, "w-0.svc.ns.svc.cluster.local", 8997);
        assert_eq!(a, socket_path(dir, "w-0.svc.ns.svc.cluster.local", 8997));
        assert_ne!(a, socket_path(dir, "w-0.svc.ns.svc.cluster.local", 8998));
        assert_ne!(a, socket_path(dir, "w-1.svc.ns.svc.cluster.local", 8997));
        assert!(a.as_os_str().len() < 60, "{}", a.display());
        // Pinned: a client and a worker of different builds must name the same file.
        assert_eq!(
            socket_path(dir, "127.0.0.1", 8997),
            Path::new("/run/curvine/worker-dfa82aae2fcf581f.sock")
        );
    }

    #[tokio::test]
    async fn messages_cross_with_and_without_a_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"block bytes").unwrap();
        let hello = LocalHello {
            worker_id: 3,
            hostname: "h".into(),
            rpc_port: 1,
        };
        send(&a, &hello, None).await.unwrap();
        let reply = LocalReply {
            code: 0,
            message: String::new(),
            length: 11,
        };
        use std::os::fd::AsFd;
        send(&a, &reply, Some(file.as_fd())).await.unwrap();
        drop(file);

        let (got, fd) = recv_with_fd::<LocalHello>(&b).await.unwrap().unwrap();
        assert_eq!(got, hello);
        assert!(fd.is_none());
        let (got, fd) = recv_with_fd::<LocalReply>(&b).await.unwrap().unwrap();
        assert_eq!(got, reply);
        // The descriptor is the same open file: its bytes, though the sender closed it.
        let mut passed = std::fs::File::from(fd.unwrap());
        passed.rewind().unwrap();
        let mut text = String::new();
        passed.read_to_string(&mut text).unwrap();
        assert_eq!(text, "block bytes");

        drop(a);
        assert!(recv::<LocalReply>(&b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_truncated_frames_are_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        a.try_write(&(MAX_FRAME as u32 + 1).to_be_bytes()).unwrap();
        let e = recv::<LocalReply>(&b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");

        let (a, b) = UnixStream::pair().unwrap();
        a.try_write(&[0, 0, 0, 9, 1, 2]).unwrap();
        drop(a);
        let e = recv::<LocalReply>(&b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");

        let (a, b) = UnixStream::pair().unwrap();
        a.try_write(&[0, 0]).unwrap();
        drop(a);
        let e = recv::<LocalReply>(&b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    }

    #[tokio::test]
    async fn extra_descriptors_are_closed_not_kept() {
        let (a, b) = UnixStream::pair().unwrap();
        let f1 = tempfile::tempfile().unwrap();
        let f2 = tempfile::tempfile().unwrap();
        let frame = {
            let body = LocalReply::default().encode_to_vec();
            let mut f = (body.len() as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&body);
            f
        };
        let rights = [f1.as_raw_fd(), f2.as_raw_fd()];
        let sent = sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(&frame)],
            &[ControlMessage::ScmRights(&rights)],
            MsgFlags::empty(),
            None,
        );
        assert!(sent.is_ok());
        // The first is kept, the other closed on receipt.
        let (_, fd) = recv_with_fd::<LocalReply>(&b).await.unwrap().unwrap();
        assert!(fd.is_some());
    }

    #[tokio::test]
    async fn a_side_that_takes_no_descriptor_reads_the_message_alone() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        use std::os::fd::AsFd;
        send(&a, &LocalReply::default(), Some(file.as_fd()))
            .await
            .unwrap();
        assert_eq!(
            recv::<LocalReply>(&b).await.unwrap(),
            Some(LocalReply::default())
        );
    }
}
