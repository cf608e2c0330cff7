//! A fault-injecting HTTP/1.1 proxy on loopback (tokio) for the network-fault test. Each
//! request read from the device is given a fault from a schedule: passed through, connection
//! dropped before or mid-request, a 503 without reaching the server, forwarded but the answer
//! dropped or cut short, stalled past the client's timeout, slowed within it, or black-holed.
//! Requests and answers are framed by Content-Length (what the device and axum send).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Forwarded, answered normally.
    Pass,
    /// Connection closed before the request was read.
    DropOnConnect,
    /// Connection closed after the request's headers, before its body.
    DropMidRequest,
    /// 503 from the proxy; the server never sees the request.
    Unavailable,
    /// 500 from the proxy after the server processed the request (its answer is replaced).
    ErrorAfterProcessing,
    /// Forwarded and processed; the connection is closed without an answer.
    DropAnswer,
    /// Forwarded and processed; only the first half of the answer is sent.
    TruncateAnswer,
    /// Forwarded; the answer is held past the client's timeout.
    Stall,
    /// Forwarded; the answer is held a little, within the client's timeout.
    Slow,
    /// Read and never forwarded nor answered: the client times out.
    BlackHole,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::DropOnConnect => "drop on connect",
            Fault::DropMidRequest => "drop mid-request",
            Fault::Unavailable => "503 before server",
            Fault::ErrorAfterProcessing => "500 after server stored",
            Fault::DropAnswer => "answer dropped",
            Fault::TruncateAnswer => "answer truncated",
            Fault::Stall => "stall past timeout",
            Fault::Slow => "slow within timeout",
            Fault::BlackHole => "black hole (timeout)",
        }
    }
}

/// Durations of the slow faults.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub stall: Duration,
    pub slow: Duration,
    pub black_hole: Duration,
}

pub type Schedule = Arc<dyn Fn(usize) -> Fault + Send + Sync>;

pub struct Proxy {
    pub addr: SocketAddr,
    counts: Arc<Mutex<BTreeMap<Fault, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, schedule: Schedule, timings: Timings) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let c = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (schedule, counts, next) = (schedule.clone(), c.clone(), next.clone());
                tokio::spawn(async move {
                    let _ = serve(client, upstream, schedule, counts, next, timings).await;
                });
            }
        });
        Proxy { addr, counts, task }
    }

    /// Requests seen per fault.
    pub fn counts(&self) -> BTreeMap<Fault, usize> {
        self.counts.lock().expect("counts lock").clone()
    }
}

/// Reads one HTTP message (headers + Content-Length body) into `buf`, which may already hold
/// some bytes. Returns the message length, or None at a clean EOF before any byte.
async fn read_message(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    headers_only: bool,
) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if headers_only {
        return Ok(Some(head_end));
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let total = head_end + len;
    while buf.len() < total {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(total))
}

async fn forward(upstream: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(request).await?;
    let mut buf = Vec::new();
    let n = read_message(&mut up, &mut buf, false)
        .await?
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    buf.truncate(n);
    Ok(buf)
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    schedule: Schedule,
    counts: Arc<Mutex<BTreeMap<Fault, usize>>>,
    next: Arc<AtomicUsize>,
    t: Timings,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let fault = schedule(next.fetch_add(1, Ordering::SeqCst));
        if fault == Fault::DropOnConnect {
            // Wait for the request to start so the fault is counted against a real request.
            let mut b = [0u8; 1];
            if client.peek(&mut b).await? == 0 {
                return Ok(());
            }
            *counts.lock().expect("lock").entry(fault).or_default() += 1;
            return Ok(());
        }
        let headers_only = fault == Fault::DropMidRequest;
        let Some(n) = read_message(&mut client, &mut buf, headers_only).await? else {
            return Ok(());
        };
        *counts.lock().expect("lock").entry(fault).or_default() += 1;
        let request: Vec<u8> = buf.drain(..n).collect();
        match fault {
            Fault::DropOnConnect | Fault::DropMidRequest => return Ok(()),
            Fault::Unavailable => {
                client
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await?;
                return Ok(());
            }
            Fault::BlackHole => {
                let mut sink = [0u8; 1024];
                let _ = tokio::time::timeout(t.black_hole, client.read(&mut sink)).await;
                return Ok(());
            }
            _ => {}
        }
        let answer = forward(upstream, &request).await?;
        match fault {
            Fault::Pass => client.write_all(&answer).await?,
            Fault::Slow => {
                tokio::time::sleep(t.slow).await;
                client.write_all(&answer).await?;
            }
            Fault::Stall => {
                tokio::time::sleep(t.stall).await;
                let _ = client.write_all(&answer).await;
                return Ok(());
            }
            Fault::ErrorAfterProcessing => {
                client
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await?;
                return Ok(());
            }
            Fault::DropAnswer => return Ok(()),
            Fault::TruncateAnswer => {
                client.write_all(&answer[..answer.len() / 2]).await?;
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}
