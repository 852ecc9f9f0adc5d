//! Upload requests in flight together (`src/server/inflight.rs`): a request may come ahead of
//! the one being recorded, is written and synced at once and recorded in its turn; every way
//! it can go wrong is refused exactly, and what a failed request left on disk is cut at the
//! commit.

use std::io::Read;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::blocking::Body;
use serde_json::{Value, json};

use attache::crypto::{Metadata, Sealed, SealedChunks, seal_key_package};

use crate::support::{ApiUser, ApiWorld, seal};

/// How the slow request of [`ApiWorld::ahead_of_a_slow_request`] ends.
#[derive(Clone, Copy)]
enum Then {
    /// The client cuts its body.
    Cut,
    /// The rest of the body arrives.
    Finish,
}

impl ApiWorld {
    /// The file of `item` in the file blob store.
    fn file(&self, item: &str) -> std::path::PathBuf {
        self.root
            .path()
            .join("data/chunks")
            .join(&item[..2])
            .join(item)
    }

    /// Seals `len` bytes and starts their upload; returns the item id with what was sealed.
    fn begin(&self, len: usize) -> (String, Sealed, SealedChunks) {
        self.begin_as(&self.ann, len)
    }

    fn begin_as(&self, who: &ApiUser, len: usize) -> (String, Sealed, SealedChunks) {
        let (sealed, chunks) = seal(&who.identity, &Metadata::default(), &vec![5; len]);
        let r = self
            .http
            .post(format!("{}/v1/items", self.url))
            .bearer_auth(&who.token)
            .json(&json!({"preamble": STANDARD.encode(sealed.preamble.as_bytes())}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().unwrap();
        (v["item"].as_str().unwrap().to_owned(), sealed, chunks)
    }

    /// `PUT` of `body` at chunk `first`; the status and the answer.
    fn put(&self, item: &str, first: usize, body: Body) -> (u16, Value) {
        self.put_as(&self.ann, item, first, body)
    }

    fn put_as(&self, who: &ApiUser, item: &str, first: usize, body: Body) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/v1/items/{item}/chunks/{first}", self.url))
            .bearer_auth(&who.token)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send();
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().unwrap_or(Value::Null))
            }
            // The client gave up on the body itself.
            Err(_) => (0, Value::Null),
        }
    }

    fn commit(&self, item: &str, sealed: &Sealed) -> (u16, Value) {
        let package = seal_key_package(
            &sealed.content_key,
            &sealed.preamble.item_id(),
            self.ann.identity.public(),
        )
        .unwrap();
        let r = self
            .http
            .post(format!("{}/v1/items/{item}/commit", self.url))
            .bearer_auth(&self.ann.token)
            .json(&json!({
                "manifest": STANDARD.encode(sealed.manifest.as_bytes()),
                "key_packages": [{"email": self.ann.email, "package": STANDARD.encode(package)}],
            }))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Sends the chunks from `from` on in one request, commits, and checks the download.
    fn finish_from(&self, item: &str, from: usize, sealed: &Sealed, chunks: &SealedChunks) {
        let n = chunks.chunks.len();
        let (status, v) = self.put(item, from, Body::from(concat(&chunks.chunks[from..])));
        assert_eq!(
            (status, v["received"].as_u64()),
            (200, Some(n as u64)),
            "{v}"
        );
        let (status, v) = self.commit(item, sealed);
        assert_eq!(status, 200, "{v}");
        assert_eq!(self.download(item), concat(&chunks.chunks));
    }

    fn download(&self, item: &str) -> Vec<u8> {
        let r = self
            .http
            .get(format!("{}/v1/items/{item}/chunks", self.url))
            .bearer_auth(&self.ann.token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().unwrap().to_vec()
    }
}

impl ApiWorld {
    /// As `who`, starts a request at chunk 0 with the body `first`, of which only a little
    /// arrives; runs `during` while it is in flight; sends `ahead` at chunk `at`; then the first
    /// body is cut or finished (`then`). Returns the answers to both requests.
    #[allow(clippy::too_many_arguments)]
    fn ahead_of_a_slow_request(
        &self,
        who: &ApiUser,
        item: &str,
        first: &[u8],
        during: impl FnOnce(),
        at: usize,
        ahead: Vec<u8>,
        then: Then,
    ) -> ((u16, Value), (u16, Value)) {
        let (feed, body) = fed(first.len());
        std::thread::scope(|scope| {
            let slow = scope.spawn(move || self.put_as(who, item, 0, body));
            feed.send(Some(first[..1000].to_vec())).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            during();
            let ahead = scope.spawn(move || self.put_as(who, item, at, Body::from(ahead)));
            std::thread::sleep(Duration::from_millis(300));
            match then {
                Then::Cut => feed.send(None).unwrap(),
                Then::Finish => feed.send(Some(first[1000..].to_vec())).unwrap(),
            }
            (slow.join().unwrap(), ahead.join().unwrap())
        })
    }
}

/// A request body fed by the test: it waits for each piece, and fails when told to.
struct Fed(Receiver<Option<Vec<u8>>>, Vec<u8>);

impl Read for Fed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(Some(piece)) => self.1 = piece,
                Ok(None) => return Err(std::io::Error::other("the test cut the body")),
                // The test sent everything.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.1.len());
        out[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

/// A body of `len` bytes that arrives as the test sends it.
fn fed(len: usize) -> (Sender<Option<Vec<u8>>>, Body) {
    let (tx, rx) = channel();
    (tx, Body::sized(Fed(rx, Vec::new()), len as u64))
}

fn concat(chunks: &[Vec<u8>]) -> Vec<u8> {
    chunks.concat()
}

#[test]
fn a_request_ahead_is_recorded_in_its_turn_and_the_item_commits_whole() {
    let w = ApiWorld::start();
    let (item, sealed, chunks) = w.begin(40 * 65_536);
    let n = chunks.chunks.len();
    assert!(n > 32);
    // The first request's body arrives slowly; the second, ahead of it, comes whole meanwhile.
    let first = concat(&chunks.chunks[..16]);
    let (feed, body) = fed(first.len());
    std::thread::scope(|scope| {
        let (w, at) = (&w, item.as_str());
        let slow = scope.spawn(move || w.put(at, 0, body));
        feed.send(Some(first[..1000].to_vec())).unwrap();
        let ahead = scope.spawn(|| w.put(&item, 16, Body::from(concat(&chunks.chunks[16..32]))));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!ahead.is_finished(), "the request ahead waits for its turn");
        feed.send(Some(first[1000..].to_vec())).unwrap();
        let (status, v) = slow.join().unwrap();
        assert_eq!((status, v["received"].as_u64()), (200, Some(16)), "{v}");
        let (status, v) = ahead.join().unwrap();
        assert_eq!((status, v["received"].as_u64()), (200, Some(32)), "{v}");
    });
    w.finish_from(&item, 32, &sealed, &chunks);
}

#[test]
fn a_request_ahead_taken_up_before_the_one_it_follows_waits_for_it() {
    let w = ApiWorld::start();
    let (item, sealed, chunks) = w.begin(40 * 65_536);
    // The request ahead reaches the server first, with nothing in flight before it; the one
    // that carries chunks 0..16 follows 200 ms later. Both are recorded, in order.
    std::thread::scope(|scope| {
        let ahead = scope.spawn(|| w.put(&item, 16, Body::from(concat(&chunks.chunks[16..32]))));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !ahead.is_finished(),
            "the request ahead waits for the one before it"
        );
        let (status, v) = w.put(&item, 0, Body::from(concat(&chunks.chunks[..16])));
        assert_eq!((status, v["received"].as_u64()), (200, Some(16)), "{v}");
        let (status, v) = ahead.join().unwrap();
        assert_eq!((status, v["received"].as_u64()), (200, Some(32)), "{v}");
    });
    w.finish_from(&item, 32, &sealed, &chunks);
}

#[test]
fn requests_ahead_are_refused_exactly_when_they_cannot_be_recorded() {
    let w = ApiWorld::start();
    let (item, sealed, chunks) = w.begin(40 * 65_536);
    let wrong_offset = |v: &Value, at: u32| {
        assert_eq!(v["error"], "wrong_offset", "{v}");
        assert_eq!(
            v["message"],
            format!("the upload is at chunk {at}; resume from there")
        );
    };
    // Ahead of nothing in flight: the chunks before it did not come within the second it
    // waits for them.
    let started = std::time::Instant::now();
    let (status, v) = w.put(&item, 16, Body::from(concat(&chunks.chunks[16..32])));
    assert_eq!(status, 409);
    wrong_offset(&v, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the chunks before it"
    );
    // Further ahead than two full requests.
    let (status, v) = w.put(&item, 257, Body::from(chunks.chunks[0].clone()));
    assert_eq!(status, 409);
    wrong_offset(&v, 0);
    // Ahead without saying its length.
    let (feed, body) = {
        let (tx, rx) = channel();
        (tx, Body::new(Fed(rx, Vec::new())))
    };
    feed.send(Some(chunks.chunks[16].clone())).unwrap();
    drop(feed);
    let (status, v) = w.put(&item, 16, body);
    assert_eq!(status, 409);
    wrong_offset(&v, 0);

    // Overlapping a request in flight, or a commit during one: busy. Then a request ahead
    // waiting on one that fails is refused as soon as it fails.
    let busy = || {
        let (status, v) = w.put(&item, 8, Body::from(concat(&chunks.chunks[8..24])));
        assert_eq!(
            (status, v["error"].as_str()),
            (409, Some("upload_busy")),
            "{v}"
        );
        assert_eq!(v["message"], "another request is changing this upload");
        let (status, v) = w.commit(&item, &sealed);
        assert_eq!(
            (status, v["error"].as_str()),
            (409, Some("upload_busy")),
            "{v}"
        );
    };
    let (slow, (status, v)) = w.ahead_of_a_slow_request(
        &w.ann,
        &item,
        &concat(&chunks.chunks[..16]),
        busy,
        16,
        concat(&chunks.chunks[16..32]),
        Then::Cut,
    );
    assert_eq!(slow.0, 0, "the client cut its own body");
    assert_eq!(status, 409, "{v}");
    wrong_offset(&v, 0);

    // The upload resumes from where the record stands.
    let (status, v) = w.put(&item, 0, Body::from(concat(&chunks.chunks[..16])));
    assert_eq!((status, v["received"].as_u64()), (200, Some(16)), "{v}");
    w.finish_from(&item, 16, &sealed, &chunks);
}

#[test]
fn what_a_failed_request_ahead_wrote_past_the_last_chunk_is_cut_at_the_commit() {
    let w = ApiWorld::start();
    // A small item of a few chunks, and 16 chunks of another written ahead of it at 1..17.
    let (item, sealed, chunks) = w.begin(3 * 65_536);
    let (_, _, other) = w.begin(40 * 65_536);
    let n = chunks.chunks.len();
    assert!((2..16).contains(&n), "{n}");
    let (slow, (status, v)) = w.ahead_of_a_slow_request(
        &w.ann,
        &item,
        &chunks.chunks[0],
        || {},
        1,
        concat(&other.chunks[16..32]),
        Then::Cut,
    );
    assert_eq!(slow.0, 0, "the client cut its own body");
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("wrong_offset")),
        "{v}"
    );
    assert_eq!(
        std::fs::metadata(w.file(&item)).unwrap().len(),
        17 * 65_552,
        "the refused request's chunks were written"
    );
    let (status, v) = w.put(&item, 0, Body::from(concat(&chunks.chunks)));
    assert_eq!(
        (status, v["received"].as_u64()),
        (200, Some(n as u64)),
        "{v}"
    );
    let (status, v) = w.commit(&item, &sealed);
    assert_eq!(status, 200, "{v}");
    let len = concat(&chunks.chunks).len() as u64;
    assert_eq!(
        std::fs::metadata(w.file(&item)).unwrap().len(),
        len,
        "cut at the commit"
    );
    assert_eq!(w.download(&item), concat(&chunks.chunks));
}

#[test]
fn a_file_written_ahead_of_an_item_of_one_short_chunk_goes_at_the_commit() {
    let w = ApiWorld::start();
    // The item is one short chunk, which the store keeps in sled; a request ahead of it
    // writes a file that would shadow it.
    let (item, sealed, chunks) = w.begin(1000);
    let (_, _, other) = w.begin(40 * 65_536);
    assert_eq!(chunks.chunks.len(), 1);
    let (slow, (status, v)) = w.ahead_of_a_slow_request(
        &w.ann,
        &item,
        &chunks.chunks[0],
        || {},
        1,
        concat(&other.chunks[..16]),
        Then::Finish,
    );
    assert_eq!(slow.0, 200, "{}", slow.1);
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("upload_complete")),
        "{v}"
    );
    assert!(w.file(&item).exists(), "the request ahead wrote a file");
    let (status, v) = w.commit(&item, &sealed);
    assert_eq!(status, 200, "{v}");
    assert!(!w.file(&item).exists(), "removed at the commit");
    assert_eq!(w.download(&item), chunks.chunks[0]);
}

#[test]
fn chunks_written_after_their_upload_was_discarded_are_deleted_with_it() {
    let w = ApiWorld::start();
    // Carol (1 MiB of quota) has requests in flight at 0 and ahead at 1 when a third, at 9,
    // passes her quota: the upload is discarded. The slow first request's chunk is written
    // after that, and must not stay on disk.
    let (item, _, chunks) = w.begin_as(&w.carol, 40 * 65_536);
    let (first_chunk, ahead_body) = (chunks.chunks[0].clone(), concat(&chunks.chunks[1..9]));
    let over = || {
        let (status, v) = w.put_as(
            &w.carol,
            &item,
            9,
            Body::from(concat(&chunks.chunks[9..25])),
        );
        assert_eq!(
            (status, v["error"].as_str()),
            (507, Some("insufficient_storage")),
            "{v}"
        );
    };
    let ((slow, first), (ahead, second)) = std::thread::scope(|scope| {
        let w = &w;
        let (feed, body) = fed(first_chunk.len());
        let at = item.as_str();
        let slow = scope.spawn(move || w.put_as(&w.carol, at, 0, body));
        feed.send(Some(first_chunk[..1000].to_vec())).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let ahead = scope.spawn(move || w.put_as(&w.carol, at, 1, Body::from(ahead_body)));
        std::thread::sleep(Duration::from_millis(300));
        over();
        feed.send(Some(first_chunk[1000..].to_vec())).unwrap();
        (slow.join().unwrap(), ahead.join().unwrap())
    });
    assert_eq!(slow, 404, "{first}");
    assert_eq!(ahead, 404, "{second}");
    assert!(
        !w.file(&item).exists(),
        "no chunk of the discarded upload stays"
    );
    // And nothing counts against the quota: a fresh upload of 900 KiB fits.
    let (item, _, chunks) = w.begin_as(&w.carol, 900 * 1024);
    let (status, v) = w.put_as(&w.carol, &item, 0, Body::from(concat(&chunks.chunks)));
    assert_eq!(status, 200, "{v}");
}
