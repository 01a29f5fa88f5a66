//! A tiny HTTP/1.1 "hello" server on green tasks, one per connection, with
//! keep-alive (`scx_rt::net`).
//!
//! ```text
//! cargo run --release -p scx-rt --example http_hello -- [ADDR]       # serve (127.0.0.1:8080)
//! cargo run --release -p scx-rt --example http_hello -- --self-test  # what CI runs
//! ```
//!
//! What it understands: a request line `METHOD TARGET HTTP/1.x`, header
//! lines up to a blank line (8 KiB for the whole head), and a body of
//! `Content-Length` bytes (read and dropped). `GET` and `HEAD` of any
//! target answer `200 OK` with `hello, world\n` (`HEAD` without the body);
//! other methods `405`; a malformed head `400`, a chunked body (any
//! `Transfer-Encoding`) `501`, and both close the connection. HTTP/1.1
//! keeps the connection open unless the request says `Connection: close`;
//! HTTP/1.0 closes it unless `Connection: keep-alive`. Pipelined requests
//! are answered in order (bytes after one request stay in the buffer for
//! the next). A connection idle for 10 s is closed: its read times out
//! through the runtime's timers.
//!
//! `--self-test` serves on `127.0.0.1:0` and runs, from plain OS threads
//! with std's blocking sockets: 16 keep-alive clients sending 100 `GET`s
//! each one at a time, then 10 pipelined in one write, a `HEAD`, a `POST`
//! with a body (`405`, still kept alive) and a last request with
//! `Connection: close` after which the server must close; plus an
//! HTTP/1.0 request (closed after its answer) and a malformed one (`400`,
//! closed). Every status, header and body is checked. Exit status 0 when
//! all of that held, 1 (with the reason) otherwise.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use scx_rt::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8 * 1024;
/// Largest body accepted (and dropped).
const MAX_BODY: usize = 1 << 20;
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const BODY: &[u8] = b"hello, world\n";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag] if flag == "--self-test" => self_test(),
        [] => serve_forever("127.0.0.1:8080"),
        [addr] if !addr.starts_with('-') => serve_forever(addr),
        _ => Err("usage: http_hello [ADDR | --self-test]".into()),
    };
    if let Err(e) = result {
        eprintln!("http_hello: {e}");
        std::process::exit(1);
    }
}

/// Accepts connections until the runtime shuts down, one task each.
fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                scx_rt::spawn(move || {
                    if let Err(e) = handle(stream) {
                        eprintln!("http_hello: connection: {e}");
                    }
                });
            }
            // The runtime shut down: green waits fail from then on.
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            Err(e) => {
                eprintln!("http_hello: accept: {e}");
                scx_rt::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// One parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    content_length: usize,
    keep_alive: bool,
}

/// Why a head was refused: the status to answer before closing.
#[derive(Debug)]
struct Refusal(u16);

fn parse_head(head: &[u8]) -> Result<Request, Refusal> {
    let text = std::str::from_utf8(head).map_err(|_| Refusal(400))?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal(400));
    };
    if method.is_empty() || (!target.starts_with('/') && target != "*") {
        return Err(Refusal(400));
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(Refusal(400)),
    };
    let mut content_length = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(Refusal(400))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| Refusal(400))?;
            if content_length > MAX_BODY {
                return Err(Refusal(413));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refusal(501));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    Ok(Request {
        method: method.to_string(),
        content_length,
        keep_alive,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Not Implemented",
    }
}

fn respond(
    s: &mut TcpStream,
    status: u16,
    body: &[u8],
    send_body: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if keep_alive {
            "Connection: keep-alive\r\n"
        } else {
            "Connection: close\r\n"
        }
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body);
    }
    s.write_all(&out)
}

/// Reads more bytes into `buf`; `Ok(false)` at end of file or after the
/// idle timeout (the connection is then closed quietly).
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::TimedOut => Ok(false),
        Err(e) => Err(e),
    }
}

/// Serves requests on one connection until it closes.
fn handle(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // The head: up to and including the blank line.
        let head_len = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() >= MAX_HEAD {
                return respond(&mut s, 431, b"", false, false);
            }
            if !fill(&mut s, &mut buf)? {
                return Ok(());
            }
        };
        let req = match parse_head(&buf[..head_len]) {
            Ok(r) => r,
            Err(Refusal(status)) => {
                respond(&mut s, status, reason(status).as_bytes(), true, false)?;
                return s.shutdown(Shutdown::Write);
            }
        };
        // The body, dropped.
        while buf.len() < head_len + req.content_length {
            if !fill(&mut s, &mut buf)? {
                return Ok(());
            }
        }
        buf.drain(..head_len + req.content_length);
        match req.method.as_str() {
            "GET" => respond(&mut s, 200, BODY, true, req.keep_alive)?,
            "HEAD" => respond(&mut s, 200, BODY, false, req.keep_alive)?,
            _ => respond(&mut s, 405, b"GET or HEAD\n", true, req.keep_alive)?,
        }
        if !req.keep_alive {
            return s.shutdown(Shutdown::Write);
        }
    }
}

fn serve_forever(addr: &str) -> Result<(), Error> {
    let rt = scx_rt::Runtime::builder().build()?;
    let listener = TcpListener::bind(addr)?;
    println!(
        "http_hello: listening on http://{} ({} CPUs)",
        listener.local_addr()?,
        rt.nr_cpus()
    );
    rt.block_on(move || accept_loop(listener));
    Ok(())
}

/// A response as the client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    keep_alive: bool,
    body: Vec<u8>,
}

/// Reads one response; `head_only`: the request was a `HEAD` (a length
/// but no body).
fn read_response(
    r: &mut BufReader<std::net::TcpStream>,
    head_only: bool,
) -> Result<Response, Error> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut len, mut keep_alive) = (None, None);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header {l:?}"))?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => len = Some(value.trim().parse::<usize>()?),
            "connection" => keep_alive = Some(value.trim() == "keep-alive"),
            _ => {}
        }
    }
    let len = len.ok_or("no Content-Length")?;
    let keep_alive = keep_alive.ok_or("no Connection header")?;
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    r.read_exact(&mut body)?;
    Ok(Response {
        status,
        keep_alive,
        body,
    })
}

fn expect(
    what: &str,
    got: &Response,
    status: u16,
    keep_alive: bool,
    body: &[u8],
) -> Result<(), Error> {
    if got.status != status || got.keep_alive != keep_alive || got.body != body {
        return Err(format!(
            "{what}: expected {status} (keep-alive {keep_alive}, body {:?}), got {got:?}",
            String::from_utf8_lossy(body)
        )
        .into());
    }
    Ok(())
}

fn connect(
    addr: SocketAddr,
) -> Result<(std::net::TcpStream, BufReader<std::net::TcpStream>), Error> {
    let s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let r = BufReader::new(s.try_clone()?);
    Ok((s, r))
}

/// Expects the server to have closed the connection (end of file).
fn expect_closed(what: &str, r: &mut BufReader<std::net::TcpStream>) -> Result<(), Error> {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        return Err(format!("{what}: {} bytes after the last response", rest.len()).into());
    }
    Ok(())
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// The keep-alive client: returns the requests it made.
fn keep_alive_client(addr: SocketAddr, c: usize) -> Result<usize, Error> {
    let (mut s, mut r) = connect(addr)?;
    let mut n = 0;
    for i in 0..100 {
        s.write_all(format!("GET /{c}/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())?;
        expect("GET", &read_response(&mut r, false)?, 200, true, BODY)?;
        n += 1;
    }
    s.write_all(&GET.repeat(10))?;
    for _ in 0..10 {
        expect(
            "pipelined GET",
            &read_response(&mut r, false)?,
            200,
            true,
            BODY,
        )?;
        n += 1;
    }
    s.write_all(b"HEAD / HTTP/1.1\r\n\r\n")?;
    expect("HEAD", &read_response(&mut r, true)?, 200, true, b"")?;
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde")?;
    expect(
        "POST",
        &read_response(&mut r, false)?,
        405,
        true,
        b"GET or HEAD\n",
    )?;
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")?;
    expect(
        "Connection: close",
        &read_response(&mut r, false)?,
        200,
        false,
        BODY,
    )?;
    expect_closed("Connection: close", &mut r)?;
    Ok(n + 3)
}

fn self_test() -> Result<(), Error> {
    let t = Instant::now();
    let rt = scx_rt::Runtime::builder().build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = rt.spawn(move || accept_loop(listener));
    let clients: Vec<_> = (0..16)
        .map(|c| std::thread::spawn(move || keep_alive_client(addr, c)))
        .collect();
    let mut requests = 0;
    for (c, h) in clients.into_iter().enumerate() {
        requests += h.join().map_err(|_| format!("client {c} panicked"))??;
    }
    // HTTP/1.0 without keep-alive: one answer, then the server closes.
    let (mut s, mut r) = connect(addr)?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    expect("HTTP/1.0", &read_response(&mut r, false)?, 200, false, BODY)?;
    expect_closed("HTTP/1.0", &mut r)?;
    // A malformed request: 400, then the server closes.
    let (mut s, mut r) = connect(addr)?;
    s.write_all(b"NONSENSE\r\n\r\n")?;
    expect(
        "malformed",
        &read_response(&mut r, false)?,
        400,
        false,
        b"Bad Request",
    )?;
    expect_closed("malformed", &mut r)?;
    rt.shutdown();
    server
        .join()
        .map_err(|e| format!("the accept loop failed: {e}"))?;
    println!(
        "http_hello: self-test passed: {} requests on 18 connections, on {} CPUs in {:.2} s",
        requests + 2,
        rt.nr_cpus(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
