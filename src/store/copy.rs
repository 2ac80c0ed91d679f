//! PostgreSQL's binary COPY format, written into a reusable buffer, and
//! [`copy_in`], which sends it: the one encoder and the one sender for every
//! bulk write by COPY (points, score history).

use sqlx::PgConnection;

use crate::model::Timestamp;

/// Bytes one COPY message carries at most. Each message passes through the
/// connection's write buffer, which keeps its largest size for the life of
/// the connection: one message of a whole chunk of history (about 15 MB at
/// 200 KRs) left every pooled connection holding that much, 166 MB in all
/// at 10,000 KRs.
const PIECE: usize = 256 * 1024;

/// Runs `statement` (a `COPY … FROM STDIN`) on `conn`, sending `data` in
/// messages of at most [`PIECE`] bytes.
pub(super) async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    data: &[u8],
) -> Result<(), sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    for piece in data.chunks(PIECE) {
        if let Err(e) = copy.send(piece).await {
            let _ = copy.abort("okrd: sending the rows failed").await;
            return Err(e);
        }
    }
    copy.finish().await?;
    Ok(())
}

/// Seconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const PG_EPOCH_SECONDS: i64 = 946_684_800;

/// A COPY stream being written.
pub(super) struct CopyBuf<'a>(&'a mut Vec<u8>);

impl<'a> CopyBuf<'a> {
    /// Starts a stream in `buf`, replacing what it held.
    pub fn start(buf: &'a mut Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension
        Self(buf)
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    /// A `bigint`.
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&8i32.to_be_bytes());
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    /// A `double precision`.
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&8i32.to_be_bytes());
        self.0.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// A nullable `double precision`.
    pub fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            Some(v) => self.f64(v),
            None => self.0.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    /// A `timestamptz` given as Unix microseconds.
    pub fn unix_micros(&mut self, micros: i64) {
        self.i64(micros - PG_EPOCH_SECONDS * 1_000_000);
    }

    /// A `timestamptz`.
    pub fn timestamp(&mut self, ts: Timestamp) {
        self.unix_micros(ts.timestamp_micros());
    }

    /// A `text`.
    pub fn text(&mut self, s: &str) {
        // Text fields here are ids and names, far below 2 GiB.
        self.0.extend_from_slice(&(s.len() as i32).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// Ends the stream.
    pub fn finish(self) {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
    }
}
