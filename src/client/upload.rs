//! Upload while sealing: a [`ChunkSink`] that starts the upload when it receives the preamble
//! and sends chunks in requests of up to [`MAX_CHUNKS_PER_REQUEST`], so nothing is written to
//! disk and memory stays at one request (about 1 MiB) besides the sealer's own batch.
//!
//! A failed request is retried after asking the server how many chunks it holds; since only
//! the current batch is kept, it resumes from anywhere inside that batch.

use std::io;

use super::ClientError;
use crate::crypto::{ChunkSink, Preamble};
use crate::wire::api::{MAX_CHUNKS_PER_REQUEST, UploadState};

/// Attempts per batch (the first try and the retries).
const ATTEMPTS: usize = 3;

/// What the sink needs from the server. The real one speaks HTTPS; tests use a mock.
pub(crate) trait UploadTransport {
    /// `POST /v1/items` with the preamble.
    fn start(&mut self, preamble: &[u8]) -> Result<UploadState, ClientError>;
    /// `PUT /v1/items/{item}/chunks/{first}` with consecutive chunks.
    fn put_chunks(
        &mut self,
        item: &str,
        first: u32,
        body: &[u8],
    ) -> Result<UploadState, ClientError>;
    /// `GET /v1/items/{item}/upload`.
    fn state(&mut self, item: &str) -> Result<UploadState, ClientError>;
    /// Called with the bytes of ciphertext the server acknowledged.
    fn progress(&mut self, _bytes: u64) {}
}

/// Batches sealed chunks into upload requests.
pub(crate) struct UploadSink<T> {
    transport: T,
    item: Option<String>,
    /// Index of the first chunk in `buf`.
    first: u32,
    /// The chunks waiting to be sent, back to back.
    buf: Vec<u8>,
    /// Where each buffered chunk starts in `buf`.
    starts: Vec<usize>,
    /// The failure behind an `io::Error` handed to the sealer.
    error: Option<ClientError>,
}

impl<T: UploadTransport> UploadSink<T> {
    pub(crate) fn new(transport: T) -> Self {
        Self {
            transport,
            item: None,
            first: 0,
            buf: Vec::new(),
            starts: Vec::with_capacity(MAX_CHUNKS_PER_REQUEST),
            error: None,
        }
    }

    /// Sends what is left and returns the item id.
    pub(crate) fn finish(mut self) -> Result<String, ClientError> {
        self.flush()?;
        self.item
            .ok_or_else(|| ClientError::Protocol("sealing produced no preamble".into()))
    }

    /// The upload failure that made sealing stop, if that is why it stopped.
    pub(crate) fn take_error(&mut self) -> Option<ClientError> {
        self.error.take()
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if self.starts.is_empty() {
            return Ok(());
        }
        let item = self
            .item
            .clone()
            .ok_or_else(|| ClientError::Protocol("a chunk came before the preamble".into()))?;
        let count = self.starts.len() as u32;
        let mut from = self.first;
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Ask where the server is: the failed request may have landed after all.
                match self.transport.state(&item) {
                    Ok(state) if (self.first..=self.first + count).contains(&state.received) => {
                        from = state.received;
                    }
                    Ok(state) => {
                        return Err(ClientError::Protocol(format!(
                            "the server holds {} chunks, expected {}..={}",
                            state.received,
                            self.first,
                            self.first + count
                        )));
                    }
                    Err(e) => {
                        last_error = Some(e);
                        continue;
                    }
                }
            }
            if from == self.first + count {
                last_error = None;
                break;
            }
            let offset = self.starts[(from - self.first) as usize];
            match self.transport.put_chunks(&item, from, &self.buf[offset..]) {
                Ok(state) if state.received == self.first + count => {
                    last_error = None;
                    break;
                }
                Ok(state) => {
                    return Err(ClientError::Protocol(format!(
                        "the server acknowledged {} chunks, expected {}",
                        state.received,
                        self.first + count
                    )));
                }
                // A refusal (4xx) will not change on retry.
                Err(e @ ClientError::Api { status, .. }) if status < 500 => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        self.transport.progress(self.buf.len() as u64);
        self.first += count;
        self.buf.clear();
        self.starts.clear();
        Ok(())
    }

    fn fail(&mut self, e: ClientError) -> io::Error {
        let message = e.to_string();
        self.error = Some(e);
        io::Error::other(message)
    }
}

impl<T: UploadTransport> ChunkSink for UploadSink<T> {
    fn preamble(&mut self, preamble: &Preamble) -> io::Result<()> {
        match self.transport.start(preamble.as_bytes()) {
            Ok(state) if state.received == 0 => {
                self.item = Some(state.item);
                Ok(())
            }
            Ok(_) => Err(self.fail(ClientError::Protocol(
                "a new upload already holds chunks".into(),
            ))),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn chunk(&mut self, index: u32, ciphertext: &[u8]) -> io::Result<()> {
        if index != self.first + self.starts.len() as u32 {
            return Err(self.fail(ClientError::Protocol("chunks out of order".into())));
        }
        self.starts.push(self.buf.len());
        self.buf.extend_from_slice(ciphertext);
        if self.starts.len() == MAX_CHUNKS_PER_REQUEST {
            self.flush().map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Identity, Metadata, Parallelism, SealedChunks, seal_item};

    /// A server in memory that can drop the answer to one request after storing it.
    #[derive(Default)]
    struct MockServer {
        preamble: Vec<u8>,
        chunks: Vec<u8>,
        received: u32,
        puts: Vec<(u32, usize)>,
        lose_answer_of_put: Option<usize>,
        acknowledged: u64,
    }

    impl UploadTransport for &mut MockServer {
        fn start(&mut self, preamble: &[u8]) -> Result<UploadState, ClientError> {
            self.preamble = preamble.to_vec();
            Ok(UploadState {
                item: "00".repeat(16),
                received: 0,
            })
        }

        fn put_chunks(
            &mut self,
            _item: &str,
            first: u32,
            body: &[u8],
        ) -> Result<UploadState, ClientError> {
            assert_eq!(first, self.received, "uploads resume where the server is");
            let n = body.len().div_ceil(crate::crypto::CHUNK_SIZE + 16);
            assert!((1..=MAX_CHUNKS_PER_REQUEST).contains(&n));
            self.puts.push((first, n));
            self.chunks.extend_from_slice(body);
            self.received += n as u32;
            if self.lose_answer_of_put == Some(self.puts.len()) {
                return Err(ClientError::Protocol("connection reset".into()));
            }
            Ok(UploadState {
                item: "00".repeat(16),
                received: self.received,
            })
        }

        fn state(&mut self, _item: &str) -> Result<UploadState, ClientError> {
            Ok(UploadState {
                item: "00".repeat(16),
                received: self.received,
            })
        }

        fn progress(&mut self, bytes: u64) {
            self.acknowledged += bytes;
        }
    }

    fn upload(content: &[u8], server: &mut MockServer) -> Vec<u8> {
        let identity = Identity::generate().unwrap();
        let mut sink = UploadSink::new(&mut *server);
        let sealed = seal_item(
            &identity,
            &Metadata::default(),
            content,
            &mut sink,
            Parallelism::All,
        )
        .unwrap();
        assert_eq!(sink.finish().unwrap(), "00".repeat(16));
        assert_eq!(server.received, sealed.manifest.chunk_count());
        assert_eq!(server.preamble, sealed.preamble.as_bytes());
        for i in 0..sealed.manifest.chunk_count() {
            let len: usize = (0..i).map(|j| sealed.manifest.chunk_len(j).unwrap()).sum();
            let chunk_len = sealed.manifest.chunk_len(i).unwrap();
            sealed
                .manifest
                .check_chunk(i, &server.chunks[len..len + chunk_len])
                .unwrap();
        }
        assert_eq!(server.acknowledged, server.chunks.len() as u64);
        server.chunks.clone()
    }

    #[test]
    fn batches_chunks_into_requests_of_sixteen() {
        let content = vec![7u8; 40 * crate::crypto::CHUNK_SIZE];
        let mut server = MockServer::default();
        upload(&content, &mut server);
        let sizes: Vec<usize> = server.puts.iter().map(|p| p.1).collect();
        assert_eq!(sizes.iter().sum::<usize>(), server.received as usize);
        assert!(
            sizes[..sizes.len() - 1].iter().all(|&n| n == 16),
            "{sizes:?}"
        );
    }

    #[test]
    fn an_empty_item_is_one_chunk() {
        let mut server = MockServer::default();
        upload(b"", &mut server);
        assert_eq!(server.puts, vec![(0, 1)]);
    }

    #[test]
    fn resumes_after_a_lost_answer() {
        let content = vec![1u8; 20 * crate::crypto::CHUNK_SIZE];
        let mut server = MockServer {
            lose_answer_of_put: Some(1),
            ..MockServer::default()
        };
        let chunks = upload(&content, &mut server);
        // The lost answer is not resent: the sink asked and went on from 16.
        assert_eq!(server.puts[0], (0, 16));
        assert_eq!(server.puts[1].0, 16);
        let mut reference = SealedChunks::default();
        let identity = Identity::generate().unwrap();
        seal_item(
            &identity,
            &Metadata::default(),
            &content[..],
            &mut reference,
            Parallelism::One,
        )
        .unwrap();
        assert_eq!(chunks.len(), reference.concatenated().len());
    }

    #[test]
    fn a_refusal_stops_sealing_with_the_server_error() {
        struct Refusing;
        impl UploadTransport for Refusing {
            fn start(&mut self, _: &[u8]) -> Result<UploadState, ClientError> {
                Err(ClientError::Api {
                    status: 413,
                    code: "too_large".into(),
                    message: "too large".into(),
                })
            }
            fn put_chunks(
                &mut self,
                _: &str,
                _: u32,
                _: &[u8],
            ) -> Result<UploadState, ClientError> {
                unreachable!()
            }
            fn state(&mut self, _: &str) -> Result<UploadState, ClientError> {
                unreachable!()
            }
        }
        let identity = Identity::generate().unwrap();
        let mut sink = UploadSink::new(Refusing);
        let e = seal_item(
            &identity,
            &Metadata::default(),
            &b"x"[..],
            &mut sink,
            Parallelism::One,
        )
        .unwrap_err();
        assert!(matches!(e, crate::crypto::ItemError::Io(_)));
        assert!(matches!(
            sink.take_error(),
            Some(ClientError::Api { status: 413, .. })
        ));
    }
}
