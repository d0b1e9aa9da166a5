//! Session messages on a libp2p stream: each one a big-endian `u32`
//! length, then that many bytes (docs/PROTOCOL.md §10.1).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::MESSAGE_BYTES_MAX;

/// Why a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer announced a message of {0} bytes (at most {MESSAGE_BYTES_MAX})")]
    TooLong(u64),
    #[error("the stream failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The next message, or `None` where the peer closed the stream cleanly
/// between two messages.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    // A clean end is an end before the first byte of a length.
    let mut got = 0;
    while got < len.len() {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len);
    if len as usize > MESSAGE_BYTES_MAX {
        return Err(FrameError::TooLong(len.into()));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// Writes one message and flushes it.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(msg.len())
        .ok()
        .filter(|l| *l as usize <= MESSAGE_BYTES_MAX)
        .ok_or(FrameError::TooLong(msg.len() as u64))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(msg).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn messages_round_trip_and_a_clean_end_is_none() {
        let mut out = Cursor::new(Vec::new());
        block_on(write(&mut out, b"hello")).unwrap();
        block_on(write(&mut out, b"")).unwrap();
        let mut r = Cursor::new(out.into_inner());
        assert_eq!(
            block_on(read(&mut r)).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(block_on(read(&mut r)).unwrap().as_deref(), Some(&b""[..]));
        assert!(block_on(read(&mut r)).unwrap().is_none());
    }

    #[test]
    fn a_truncated_or_oversized_message_is_an_error() {
        let mut r = Cursor::new(vec![0, 0, 0, 9, 1, 2]);
        assert!(matches!(block_on(read(&mut r)), Err(FrameError::Io(_))));
        let mut r = Cursor::new(vec![0, 0]);
        assert!(matches!(block_on(read(&mut r)), Err(FrameError::Io(_))));
        let mut r = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert!(matches!(
            block_on(read(&mut r)),
            Err(FrameError::TooLong(_))
        ));
    }
}
