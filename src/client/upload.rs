//! Upload while sealing: a [`ChunkSink`] that starts the upload when it receives the preamble
//! and sends chunks in requests of up to [`MAX_BATCH`] chunks, so nothing is written to disk
//! and memory stays at a few requests besides the sealer's own batch.
//!
//! Requests are pipelined with sealing and with each other: while up to [`IN_FLIGHT`]
//! requests (two while they are of their first size) are on their way (each on its own thread,
//! when the transport offers a sender), the next batch is sealed. The server writes and syncs each request's chunks as they come
//! and records them in order, so one request's sync overlaps the next one's transfer. Answers
//! are taken oldest first; a failed request is retried on the calling thread after asking the
//! server how many chunks it holds, and since each batch is kept until it is acknowledged, the
//! upload resumes from anywhere inside it.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ClientError;
use crate::crypto::{ChunkSink, Preamble, SEALED_CHUNK_LEN};
use crate::wire::api::{MAX_CHUNKS_PER_REQUEST, UploadState};

/// Attempts per batch (the first try and the retries).
const ATTEMPTS: usize = 3;

/// Requests of one upload on their way at once, once answers come quickly enough for requests
/// to grow past [`FIRST_BATCH`]. A request's answer waits for its sync and its record's flush;
/// with four on their way, those waits overlap the transfer of the others and the link stays
/// busy (a 1 GiB send on loopback: 0.52-0.58 GB/s, against 0.36-0.39 with two of twice the
/// size; docs/PERFORMANCE.md).
const IN_FLIGHT: usize = 4;
/// Requests on their way at once while they are of [`FIRST_BATCH`] chunks: on a link too slow
/// for them to grow, each request shares it with fewer others and still arrives within the
/// server's body deadline (1 MiB in 120 s with two on their way takes 140 kbit/s, with four
/// 280).
const IN_FLIGHT_SLOW: usize = 2;
/// Chunks in the largest request (4 MiB): the request buffers (those on their way and the one
/// being filled) then take 20 MiB at most, and 24 while a failed request's body is copied for
/// its retry.
const MAX_BATCH: usize = 64;
const _: () = assert!(MAX_BATCH <= MAX_CHUNKS_PER_REQUEST);

/// Chunks in the first request of an upload (1 MiB).
const FIRST_BATCH: usize = 16;
/// A request answered within this grows the next ones.
const GROW_BELOW: Duration = Duration::from_secs(2);
/// A request that took longer than this shrinks the next ones.
const SHRINK_AFTER: Duration = Duration::from_secs(20);

/// One `PUT /v1/items/{item}/chunks/{first}`, callable from several threads at once.
pub(crate) type PutChunks =
    Arc<dyn Fn(&str, u32, Bytes) -> Result<UploadState, ClientError> + Send + Sync>;

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
    /// A `PUT` for sender threads, so that sealing goes on while batches travel; `None` sends
    /// each batch from the calling thread. Its failures are retried by `put_chunks`.
    fn sender(&mut self) -> Option<PutChunks> {
        None
    }
}

/// Consecutive chunks waiting to be sent, back to back.
#[derive(Default)]
struct Batch {
    /// Index of the first chunk.
    first: u32,
    bytes: Vec<u8>,
    /// Where each chunk starts in `bytes`.
    starts: Vec<usize>,
}

impl Batch {
    fn end(&self) -> u32 {
        self.first + self.starts.len() as u32
    }
}

/// A batch on its way, on its own thread.
struct Pending {
    first: u32,
    starts: Vec<usize>,
    /// The body, shared with the request (kept for a retry).
    bytes: Bytes,
    /// The answer and how long it took.
    request: JoinHandle<(Result<UploadState, ClientError>, Duration)>,
}

/// Batches sealed chunks into upload requests.
pub(crate) struct UploadSink<T> {
    transport: T,
    item: Option<String>,
    /// The chunks being collected.
    batch: Batch,
    /// Chunks per request now: from [`FIRST_BATCH`], doubled after each request answered
    /// quickly, up to [`MAX_BATCH`], and halved after a slow one; so a fast link
    /// pays few syncs per GiB and a slow one still sends each request well inside the
    /// server's body deadline.
    batch_chunks: usize,
    /// The transport's sender, if it has one.
    put: Option<PutChunks>,
    /// Requests on their way, oldest first.
    in_flight: VecDeque<Pending>,
    /// The buffer of the last request acknowledged, for the next batch.
    spare: Option<Vec<u8>>,
    /// The failure behind an `io::Error` handed to the sealer.
    error: Option<ClientError>,
}

impl<T> Drop for UploadSink<T> {
    fn drop(&mut self) {
        // Answers no one will read: let the requests finish and their threads leave.
        for pending in self.in_flight.drain(..) {
            let _ = pending.request.join();
        }
    }
}

impl<T: UploadTransport> UploadSink<T> {
    pub(crate) fn new(transport: T) -> Self {
        Self {
            transport,
            item: None,
            batch: Batch {
                first: 0,
                bytes: Vec::new(),
                starts: Vec::with_capacity(FIRST_BATCH),
            },
            batch_chunks: FIRST_BATCH,
            put: None,
            in_flight: VecDeque::new(),
            spare: None,
            error: None,
        }
    }

    /// Sends what is left and returns the item id.
    pub(crate) fn finish(mut self) -> Result<String, ClientError> {
        self.dispatch()?;
        while !self.in_flight.is_empty() {
            self.settle_oldest()?;
        }
        self.item
            .take()
            .ok_or_else(|| ClientError::Protocol("sealing produced no preamble".into()))
    }

    /// The upload failure that made sealing stop, if that is why it stopped.
    pub(crate) fn take_error(&mut self) -> Option<ClientError> {
        self.error.take()
    }

    fn item(&self) -> Result<String, ClientError> {
        self.item
            .clone()
            .ok_or_else(|| ClientError::Protocol("a chunk came before the preamble".into()))
    }

    /// Sends the collected batch: on a thread of its own once fewer than [`IN_FLIGHT`]
    /// requests are on their way ([`IN_FLIGHT_SLOW`] while requests are of their first size),
    /// or right here.
    fn dispatch(&mut self) -> Result<(), ClientError> {
        if self.batch.starts.is_empty() {
            return Ok(());
        }
        let item = self.item()?;
        let first = self.batch.end();
        let batch = std::mem::take(&mut self.batch);
        while self.in_flight.len() >= self.most_in_flight() {
            self.settle_oldest()?;
        }
        // The next batch fills the buffer of the request just acknowledged, so that at most
        // IN_FLIGHT + 1 request buffers ever exist, and each is reused rather than allocated
        // (and its pages faulted in) afresh for every request.
        let mut bytes = self.spare.take().unwrap_or_default();
        bytes.clear();
        bytes.reserve(self.batch_chunks * SEALED_CHUNK_LEN);
        self.batch = Batch {
            first,
            bytes,
            starts: Vec::with_capacity(self.batch_chunks),
        };
        let Some(put) = self.put.clone() else {
            return self.send_here(&item, batch);
        };
        let bytes = Bytes::from(batch.bytes);
        let (body, target, first) = (bytes.clone(), item.clone(), batch.first);
        let spawned = std::thread::Builder::new()
            .name("attache-upload".into())
            .spawn(move || {
                let started = Instant::now();
                let result = put(&target, first, body);
                (result, started.elapsed())
            });
        match spawned {
            Ok(request) => {
                self.in_flight.push_back(Pending {
                    first: batch.first,
                    starts: batch.starts,
                    bytes,
                    request,
                });
                Ok(())
            }
            // Without a thread, from here: slower, not wrong.
            Err(_) => self.send_here(
                &item,
                Batch {
                    first: batch.first,
                    bytes: Vec::from(bytes),
                    starts: batch.starts,
                },
            ),
        }
    }

    /// How many requests may be on their way at once, by the size requests have reached.
    fn most_in_flight(&self) -> usize {
        if self.batch_chunks > FIRST_BATCH {
            IN_FLIGHT
        } else {
            IN_FLIGHT_SLOW
        }
    }

    /// Sends `batch` from the calling thread and takes the answer.
    fn send_here(&mut self, item: &str, batch: Batch) -> Result<(), ClientError> {
        let started = Instant::now();
        let result = self.transport.put_chunks(item, batch.first, &batch.bytes);
        if result.is_ok() {
            self.adapt(batch.starts.len(), started.elapsed());
        }
        self.acknowledged(item, batch, result)
    }

    /// Waits for the oldest request on its way, and retries it here if it failed.
    fn settle_oldest(&mut self) -> Result<(), ClientError> {
        let Some(pending) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (result, took) = pending
            .request
            .join()
            .map_err(|_| ClientError::Protocol("the upload thread stopped".into()))?;
        if result.is_ok() {
            self.adapt(pending.starts.len(), took);
        }
        let batch = Batch {
            first: pending.first,
            // The request is over, so the buffer is the batch's alone again (not copied).
            bytes: Vec::from(pending.bytes),
            starts: pending.starts,
        };
        let item = self.item()?;
        self.acknowledged(&item, batch, result)
    }

    /// Sizes the next requests by how long a request of `chunks` chunks took.
    fn adapt(&mut self, chunks: usize, took: Duration) {
        if took > SHRINK_AFTER {
            self.batch_chunks = (self.batch_chunks / 2).max(FIRST_BATCH);
        } else if took < GROW_BELOW && chunks >= self.batch_chunks {
            self.batch_chunks = (self.batch_chunks * 2).min(MAX_BATCH);
        }
    }

    /// Takes the answer to the first attempt at `batch`: on success reports progress and keeps
    /// the buffer; on failure retries from where the server is.
    fn acknowledged(
        &mut self,
        item: &str,
        batch: Batch,
        result: Result<UploadState, ClientError>,
    ) -> Result<(), ClientError> {
        let end = batch.end();
        let mut last_error = match result {
            // A later request may have been recorded too.
            Ok(state) if state.received >= end => None,
            Ok(state) => {
                return Err(ClientError::Protocol(format!(
                    "the server acknowledged {} chunks, expected {end}",
                    state.received
                )));
            }
            Err(e) => Some(e),
        };
        for _ in 1..ATTEMPTS {
            let Some(e) = last_error.take() else { break };
            // A refusal (4xx, or 507: over a quota, the upload discarded) will not change on
            // retry; but a request that came ahead of one that failed is refused with
            // `wrong_offset`, and goes again from where the server is.
            if let ClientError::Api { status, code, .. } = &e {
                let behind_a_failure = *status == 409 && code == "wrong_offset";
                if (*status < 500 || *status == 507) && !behind_a_failure {
                    return Err(e);
                }
            }
            // Ask where the server is: the failed request may have landed after all.
            let from = match self.transport.state(item) {
                Ok(state) if state.received >= batch.first => state.received.min(end),
                Ok(state) => {
                    return Err(ClientError::Protocol(format!(
                        "the server holds {} chunks, expected {} or more",
                        state.received, batch.first
                    )));
                }
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            if from == end {
                break;
            }
            let offset = batch.starts[(from - batch.first) as usize];
            match self
                .transport
                .put_chunks(item, from, &batch.bytes[offset..])
            {
                Ok(state) if state.received >= end => {}
                Ok(state) => {
                    return Err(ClientError::Protocol(format!(
                        "the server acknowledged {} chunks, expected {end}",
                        state.received
                    )));
                }
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        self.transport.progress(batch.bytes.len() as u64);
        self.spare = Some(batch.bytes);
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
                self.put = self.transport.sender();
                Ok(())
            }
            Ok(_) => Err(self.fail(ClientError::Protocol(
                "a new upload already holds chunks".into(),
            ))),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn chunk(&mut self, index: u32, ciphertext: &[u8]) -> io::Result<()> {
        if index != self.batch.end() {
            return Err(self.fail(ClientError::Protocol("chunks out of order".into())));
        }
        self.batch.starts.push(self.batch.bytes.len());
        self.batch.bytes.extend_from_slice(ciphertext);
        if self.batch.starts.len() >= self.batch_chunks {
            self.dispatch().map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

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

    impl MockServer {
        fn put(&mut self, first: u32, body: &[u8]) -> Result<UploadState, ClientError> {
            assert_eq!(first, self.received, "uploads resume where the server is");
            let n = body.len().div_ceil(SEALED_CHUNK_LEN);
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
    }

    /// The mock as a transport; `pipelined` offers sender threads.
    struct Mock {
        server: Arc<Mutex<MockServer>>,
        /// Told whenever the server records chunks.
        turn: Arc<Condvar>,
        pipelined: bool,
    }

    impl UploadTransport for Mock {
        fn start(&mut self, preamble: &[u8]) -> Result<UploadState, ClientError> {
            self.server.lock().unwrap().preamble = preamble.to_vec();
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
            self.server.lock().unwrap().put(first, body)
        }

        fn state(&mut self, _item: &str) -> Result<UploadState, ClientError> {
            Ok(UploadState {
                item: "00".repeat(16),
                received: self.server.lock().unwrap().received,
            })
        }

        fn progress(&mut self, bytes: u64) {
            self.server.lock().unwrap().acknowledged += bytes;
        }

        fn sender(&mut self) -> Option<PutChunks> {
            let (server, turn) = (self.server.clone(), self.turn.clone());
            self.pipelined.then(|| {
                // Like the server, a request that comes ahead waits until the chunks before
                // it are recorded.
                Arc::new(move |_: &str, first: u32, body: Bytes| {
                    let mut s = server.lock().unwrap();
                    while s.received < first {
                        s = turn.wait(s).unwrap();
                    }
                    let answer = s.put(first, &body);
                    turn.notify_all();
                    answer
                }) as PutChunks
            })
        }
    }

    fn upload(content: &[u8], server: &mut MockServer) -> Vec<u8> {
        let chunks = upload_with(content, server, false);
        let mut again = MockServer {
            lose_answer_of_put: server.lose_answer_of_put,
            ..MockServer::default()
        };
        let pipelined = upload_with(content, &mut again, true);
        assert_eq!(
            again.puts, server.puts,
            "the same requests, pipelined or not"
        );
        assert_eq!(pipelined.len(), chunks.len());
        chunks
    }

    fn upload_with(content: &[u8], server: &mut MockServer, pipelined: bool) -> Vec<u8> {
        let shared = Arc::new(Mutex::new(std::mem::take(server)));
        let identity = Identity::generate().unwrap();
        let mut sink = UploadSink::new(Mock {
            server: shared.clone(),
            turn: Arc::default(),
            pipelined,
        });
        let sealed = seal_item(
            &identity,
            &Metadata::default(),
            content,
            &mut sink,
            Parallelism::All,
        )
        .unwrap();
        assert_eq!(sink.finish().unwrap(), "00".repeat(16));
        *server = std::mem::take(&mut *shared.lock().unwrap());
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
    fn requests_grow_from_one_mib_while_answers_come_quickly() {
        let total = 1200;
        let content = vec![7u8; total * crate::crypto::CHUNK_SIZE];
        for pipelined in [false, true] {
            let mut server = MockServer::default();
            upload_with(&content, &mut server, pipelined);
            let sent: Vec<usize> = server.puts.iter().map(|p| p.1).collect();
            // Without sender threads each answer sizes the next request; with them, a request
            // is collected while those before it are in flight (two at the first size, then
            // four), so it grows that many steps later.
            let growth: &[usize] = if pipelined {
                &[16, 16, 16, 32, 32, 32, 32, 32, 64, 64]
            } else {
                &[16, 32]
            };
            assert_eq!(sent[..growth.len()], *growth, "pipelined: {pipelined}");
            // Then full requests; the last carries what is left (the padding makes the total
            // more than `total`).
            let full = &sent[growth.len()..sent.len() - 1];
            assert!(
                full.len() >= 4 && full.iter().all(|&n| n == MAX_BATCH),
                "pipelined: {pipelined}: {sent:?}"
            );
            assert_eq!(sent.iter().sum::<usize>(), server.received as usize);
            assert!(server.received as usize > total);
        }
        assert_eq!(MAX_BATCH, 64);
    }

    #[test]
    fn a_slow_answer_halves_the_requests_and_a_quick_one_doubles_them() {
        let mut sink = UploadSink::new(Mock {
            server: Arc::default(),
            turn: Arc::default(),
            pipelined: false,
        });
        sink.batch_chunks = MAX_BATCH;
        sink.adapt(MAX_BATCH, Duration::from_secs(30));
        assert_eq!(sink.batch_chunks, 32);
        sink.adapt(32, Duration::from_secs(5));
        assert_eq!(sink.batch_chunks, 32, "neither quick nor slow");
        sink.adapt(10, Duration::from_millis(5));
        assert_eq!(sink.batch_chunks, 32, "a short last request says nothing");
        sink.adapt(32, Duration::from_millis(5));
        assert_eq!(sink.batch_chunks, 64);
        sink.adapt(64, Duration::from_millis(5));
        assert_eq!(sink.batch_chunks, MAX_BATCH, "no further than the limit");
        for _ in 0..8 {
            sink.adapt(sink.batch_chunks, Duration::from_secs(60));
        }
        assert_eq!(sink.batch_chunks, FIRST_BATCH);
    }

    #[test]
    fn an_empty_item_is_one_chunk() {
        let mut server = MockServer::default();
        upload(b"", &mut server);
        assert_eq!(server.puts, vec![(0, 1)]);
    }

    #[test]
    fn resumes_after_a_lost_answer() {
        let n = FIRST_BATCH;
        let content = vec![1u8; (n + 4) * crate::crypto::CHUNK_SIZE];
        let mut server = MockServer {
            lose_answer_of_put: Some(1),
            ..MockServer::default()
        };
        let chunks = upload(&content, &mut server);
        // The lost answer is not resent: the sink asked and went on from the first request's
        // end.
        assert_eq!(server.puts[0], (0, n));
        assert_eq!(server.puts[1].0, n as u32);
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
