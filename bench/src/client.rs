//! A minimal HTTP/1.1 keep-alive client over a tokio TcpStream: one request
//! at a time per connection, bodies framed by Content-Length (what the
//! server sends) or chunked, and a closed connection reported so the caller
//! reconnects.

use std::{io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Conn {
    stream: TcpStream,
    host: String,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// The server said `Connection: close`; the next request needs a new
    /// connection.
    pub closed: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            out: Vec::with_capacity(1024),
            buf: Vec::with_capacity(16 * 1024),
            closed: false,
        })
    }

    /// Sends one request and reads its whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        api_key: Option<&str>,
        json: Option<&str>,
    ) -> io::Result<Response> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server closed the connection",
            ));
        }
        self.out.clear();
        self.out.extend_from_slice(method.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(path.as_bytes());
        self.out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.out.extend_from_slice(self.host.as_bytes());
        self.out
            .extend_from_slice(b"\r\nAccept: application/json\r\n");
        if let Some(key) = api_key {
            self.out.extend_from_slice(b"X-API-Key: ");
            self.out.extend_from_slice(key.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        match json {
            Some(body) => {
                self.out.extend_from_slice(
                    format!(
                        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                self.out.extend_from_slice(body.as_bytes());
            }
            None => self.out.extend_from_slice(b"\r\n"),
        }
        self.stream.write_all(&self.out).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        Ok(n)
    }

    /// Reads more into the buffer; an error of `kind` saying `what` if the
    /// server has closed the connection.
    async fn more(&mut self, kind: io::ErrorKind, what: &'static str) -> io::Result<()> {
        if self.fill().await? == 0 {
            self.closed = true;
            return Err(io::Error::new(kind, what));
        }
        Ok(())
    }

    /// Where the next `\r\n` after `from` starts in the buffer, reading
    /// until there is one.
    async fn line_end(&mut self, from: usize, what: &'static str) -> io::Result<usize> {
        loop {
            if let Some(i) = find(&self.buf[from..], b"\r\n") {
                return Ok(from + i);
            }
            self.more(io::ErrorKind::InvalidData, what).await?;
        }
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.more(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering",
            )
            .await?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        let mut close = head.close;
        let start = head_end + 4;
        let (body, consumed) = match head.framing {
            Framing::Length(n) => {
                while self.buf.len() < start + n {
                    self.more(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection mid-body",
                    )
                    .await?;
                }
                (self.buf[start..start + n].to_vec(), start + n)
            }
            Framing::Chunked => self.read_chunked(start).await?,
            Framing::UntilClose => {
                while self.fill().await? > 0 {}
                close = true;
                (self.buf[start..].to_vec(), self.buf.len())
            }
        };
        self.buf.drain(..consumed);
        if close {
            self.closed = true;
        }
        Ok(Response {
            status: head.status,
            body,
        })
    }

    async fn read_chunked(&mut self, mut at: usize) -> io::Result<(Vec<u8>, usize)> {
        let mut body = Vec::new();
        loop {
            let line_end = self
                .line_end(at, "the connection closed inside a chunked body")
                .await?;
            let size_text =
                std::str::from_utf8(&self.buf[at..line_end]).map_err(|_| bad("bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| bad(format!("bad chunk size '{size_text}'")))?;
            at = line_end + 2;
            if size == 0 {
                return Ok((body, self.skip_trailers(at).await?));
            }
            while self.buf.len() < at + size + 2 {
                self.more(
                    io::ErrorKind::InvalidData,
                    "the connection closed inside a chunk",
                )
                .await?;
            }
            body.extend_from_slice(&self.buf[at..at + size]);
            at += size + 2;
        }
    }

    /// Skips the trailers after the last chunk, if any, up to the empty line
    /// that ends them; where the response ends.
    async fn skip_trailers(&mut self, mut at: usize) -> io::Result<usize> {
        loop {
            let end = self
                .line_end(at, "the connection closed inside chunk trailers")
                .await?;
            if end == at {
                return Ok(at + 2);
            }
            at = end + 2;
        }
    }
}

/// What a response's head says: its status, how its body is framed and
/// whether the server closes the connection after it.
struct Head {
    status: u16,
    framing: Framing,
    close: bool,
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let head = std::str::from_utf8(head).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line '{status_line}'")))?;
    let mut framing = Framing::UntilClose;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| bad(format!("bad Content-Length '{value}'")))?;
            framing = Framing::Length(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    Ok(Head {
        status,
        framing,
        close,
    })
}

/// The `"id"` of a JSON object the server answered with, without parsing the
/// whole body (the server puts `id` first).
pub fn json_id(body: &[u8]) -> Option<String> {
    let key = b"\"id\":\"";
    let start = find(body, key)? + key.len();
    let len = body[start..].iter().position(|b| *b == b'"')?;
    String::from_utf8(body[start..start + len].to_vec()).ok()
}

/// The string value of `key` in a JSON body, found without parsing it all;
/// unlike `json_id` it allows whitespace around the colon, as MLflow
/// pretty-prints its answers.
pub fn json_str(body: &[u8], key: &str) -> Option<String> {
    let quoted = format!("\"{key}\"");
    let mut at = find(body, quoted.as_bytes())? + quoted.len();
    let skip_space = |at: &mut usize| {
        while body.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
    };
    skip_space(&mut at);
    if body.get(at) != Some(&b':') {
        return None;
    }
    at += 1;
    skip_space(&mut at);
    if body.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = body[start..].iter().position(|b| *b == b'"')?;
    String::from_utf8(body[start..start + len].to_vec()).ok()
}
