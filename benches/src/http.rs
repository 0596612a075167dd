//! A blocking HTTP/1.1 client over one keep-alive TCP connection: enough to GET blobs from a
//! registry on loopback, stream each body through a caller's sink (a hasher) and time its first
//! byte. Bodies are framed by `Content-Length`, chunked transfer coding or the end of the
//! connection; no TLS, no redirects, no proxies.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// Longest status or header line accepted.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// A connection to one server, opened on first use and reopened when the server closes it.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

/// A response's status and headers, with what its body came to.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Bytes of body handed to the sink.
    pub body_bytes: u64,
    /// From the request's last byte sent to the first body byte read (None: empty body).
    pub first_byte: Option<Duration>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    /// A client for the server at `addr`; nothing is connected yet.
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// `GET path` with extra request headers; the body goes to `sink` as it arrives.
    pub fn get(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Response> {
        self.request("GET", path, headers, sink)
    }

    /// `HEAD path` with extra request headers.
    pub fn head(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        self.request("HEAD", path, headers, &mut |_| {})
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // A kept-alive connection the server has since closed fails on first use: retry once
        // on a new one, unless the new one was what failed.
        let reused = self.conn.is_some();
        match self.send(method, &head, sink) {
            Err(Failure::BeforeResponse(_)) if reused => {
                self.conn = None;
                self.send(method, &head, sink).map_err(Failure::into_io)
            }
            other => other.map_err(Failure::into_io),
        }
    }

    fn send(
        &mut self,
        method: &str,
        head: &str,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Response, Failure> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let stream = TcpStream::connect(self.addr).map_err(Failure::Connect)?;
                stream.set_nodelay(true).map_err(Failure::Connect)?;
                self.conn
                    .insert(BufReader::with_capacity(256 * 1024, stream))
            }
        };
        conn.get_mut()
            .write_all(head.as_bytes())
            .map_err(Failure::BeforeResponse)?;
        let sent = Instant::now();
        let status_line = read_line(conn).map_err(Failure::BeforeResponse)?;
        let result = read_response(conn, &status_line, method, sent, sink);
        match &result {
            Ok((_, keep)) if *keep => {}
            _ => self.conn = None,
        }
        result.map(|(r, _)| r).map_err(Failure::During)
    }
}

/// Where a request failed: only a failure before any response byte may be retried.
enum Failure {
    Connect(io::Error),
    BeforeResponse(io::Error),
    During(io::Error),
}

impl Failure {
    fn into_io(self) -> io::Error {
        match self {
            Failure::Connect(e) | Failure::BeforeResponse(e) | Failure::During(e) => e,
        }
    }
}

/// The response after its status line; also whether the connection may be reused.
fn read_response(
    conn: &mut BufReader<TcpStream>,
    status_line: &str,
    method: &str,
    sent: Instant,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<(Response, bool)> {
    let status = parse_status(status_line)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(conn)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("header line without a colon: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body_bytes: 0,
        first_byte: None,
    };
    let mut keep = !response
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let framing = framing(&response, method)?;
    let mut counted = |bytes: &[u8]| {
        if response.first_byte.is_none() && !bytes.is_empty() {
            response.first_byte = Some(sent.elapsed());
        }
        response.body_bytes += bytes.len() as u64;
        sink(bytes);
    };
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => copy_exact(conn, n, &mut counted)?,
        Framing::Chunked => read_chunked(conn, &mut counted)?,
        Framing::UntilClose => {
            copy_to_end(conn, &mut counted)?;
            keep = false;
        }
    }
    Ok((response, keep))
}

/// How a response's body is delimited (RFC 9112 section 6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(r: &Response, method: &str) -> io::Result<Framing> {
    if method == "HEAD" || r.status / 100 == 1 || r.status == 204 || r.status == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(te) = r.header("transfer-encoding") {
        if te.to_ascii_lowercase().ends_with("chunked") {
            return Ok(Framing::Chunked);
        }
        return Ok(Framing::UntilClose);
    }
    match r.header("content-length") {
        Some(n) => n
            .parse()
            .map(Framing::Length)
            .map_err(|_| invalid(format!("bad Content-Length {n:?}"))),
        None => Ok(Framing::UntilClose),
    }
}

fn parse_status(line: &str) -> io::Result<u16> {
    let mut parts = line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    match (version, code.and_then(|c| c.parse().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(invalid(format!("bad status line {line:?}"))),
    }
}

/// One line without its CRLF; an error at the end of the stream.
fn read_line(conn: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let n = conn
        .by_ref()
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a line",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(invalid("line too long or cut short".to_owned()));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("line is not UTF-8".to_owned()))
}

fn copy_exact(conn: &mut impl BufRead, mut n: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    while n > 0 {
        let buf = conn.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body cut short, {n} bytes missing"),
            ));
        }
        let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        sink(&buf[..take]);
        conn.consume(take);
        n -= take as u64;
    }
    Ok(())
}

fn copy_to_end(conn: &mut impl BufRead, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    loop {
        let buf = conn.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len();
        sink(buf);
        conn.consume(n);
    }
}

/// A chunked body: `SIZE[;ext]` CRLF, data, CRLF ... `0` CRLF, trailers, CRLF.
fn read_chunked(conn: &mut impl BufRead, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    loop {
        let line = read_line(conn)?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            while !read_line(conn)?.is_empty() {}
            return Ok(());
        }
        copy_exact(conn, size, sink)?;
        if !read_line(conn)?.is_empty() {
            return Err(invalid("chunk not followed by CRLF".to_owned()));
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A server that answers each connection's requests with the next canned responses, one
    /// list per connection, and returns the requests it read.
    fn serve(
        conversations: Vec<Vec<&'static str>>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answers in conversations {
                let (stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                for answer in answers {
                    let mut request = String::new();
                    loop {
                        let line = read_line(&mut reader).expect("request line");
                        if line.is_empty() {
                            break;
                        }
                        request.push_str(&line);
                        request.push('\n');
                    }
                    seen.push(request);
                    stream.write_all(answer.as_bytes()).expect("answer");
                }
            }
            seen
        });
        (addr, handle)
    }

    fn body(client: &mut Client, path: &str) -> (Response, Vec<u8>) {
        let mut got = Vec::new();
        let r = client
            .get(path, &[("Range", "bytes=0-")], &mut |b| {
                got.extend_from_slice(b)
            })
            .expect("get");
        (r, got)
    }

    #[test]
    fn length_and_chunked_bodies_on_one_kept_alive_connection() {
        let (addr, server) = serve(vec![vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDocker-Content-Digest: sha256:ab\r\n\r\nhello",
            "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n\
             3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ]]);
        let mut client = Client::new(addr);
        let (r, got) = body(&mut client, "/a");
        assert_eq!((r.status, got.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("docker-content-digest"), Some("sha256:ab"));
        assert!(r.first_byte.is_some());
        let (r, got) = body(&mut client, "/b");
        assert_eq!(
            (r.status, got.as_slice(), r.body_bytes),
            (206, &b"abcde"[..], 5)
        );
        let r = client.head("/c", &[]).expect("head");
        assert_eq!((r.status, r.first_byte), (404, None));
        let requests = server.join().expect("server");
        assert!(requests[0].starts_with("GET /a HTTP/1.1\nHost: 127.0.0.1:"));
        assert!(requests[0].contains("Range: bytes=0-"));
        assert!(requests[2].starts_with("HEAD /c"));
    }

    #[test]
    fn a_closed_connection_is_reopened() {
        let (addr, server) = serve(vec![
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"],
            vec!["HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"],
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny"],
        ]);
        let mut client = Client::new(addr);
        assert_eq!(body(&mut client, "/1").1, b"x");
        // The server dropped the first connection after one answer: the client retries.
        assert_eq!(body(&mut client, "/2").1, b"until the end");
        assert_eq!(body(&mut client, "/3").1, b"y");
        assert_eq!(server.join().expect("server").len(), 3);
    }

    #[test]
    fn a_short_body_is_an_error() {
        let (addr, server) = serve(vec![vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        ]]);
        let mut client = Client::new(addr);
        let err = client.get("/", &[], &mut |_| {}).expect_err("short body");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        server.join().expect("server");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 206 Partial Content").ok(), Some(206));
        assert_eq!(parse_status("HTTP/1.0 200").ok(), Some(200));
        assert!(parse_status("SPDY 200 OK").is_err());
        assert!(parse_status("HTTP/1.1 abc").is_err());
    }
}
