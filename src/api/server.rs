//! The HTTP server loop: accepts connections, serves them with hyper, and
//! keeps a client from holding the server hostage with sockets.
//!
//! poem's own `Server` has no header-read timeout, lets an idle socket live
//! as long as it sends a byte now and then, has no cap on connections and
//! retries a failing accept in a tight loop, so 1,100 idle sockets against
//! an fd limit of 1024 stopped it answering anyone. Here:
//!
//! - a connection that waits for a request longer than the keep-alive
//!   timeout, or takes longer than the header-read timeout to send a
//!   request's head once it started, is closed; these timeouts run only
//!   while no request is in flight, so they never cut one or its response;
//! - at most `max_connections` are open; past that, the oldest connection
//!   with no request in flight is closed to make room, so a flood of idle
//!   sockets costs its own sockets and not the next client's request, and
//!   when every connection is busy the newcomer is closed at once;
//! - an accept that fails for want of file descriptors closes an idle
//!   connection and waits for its descriptor (or pauses, when none is
//!   idle) instead of retrying in a loop;
//! - on shutdown: no new connections, idle ones closed, in-flight requests
//!   get the grace period, then whatever is left is dropped.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{
    Addr, Endpoint, EndpointExt,
    endpoint::BoxEndpoint,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Notify,
    time::Instant,
};
use tracing::{debug, info, warn};

/// Limits and timeouts of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Connections open at once; past it the oldest idle one is closed.
    pub max_connections: usize,
    /// How long a connection may wait for its next request (or its first).
    pub keep_alive_timeout: Duration,
    /// How long a client has to send a request's head once it started.
    pub header_read_timeout: Duration,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// How long in-flight requests get to finish after shutdown begins.
    pub grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            keep_alive_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            http2_max_concurrent_streams: 64,
            grace: Duration::from_secs(30),
        }
    }
}

/// Binds `addr` with a long accept queue (the kernel caps it at
/// net.core.somaxconn): while a flood of connections is being accepted
/// and shed, a queue that is full drops the next client's SYN, and its
/// retry comes only a second later.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do, so a restart finds the port free at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// SIGINT (Ctrl-C) and SIGTERM, watched from the start so that a second
/// one is never missed between two waits.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The number of the next signal received.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => nix::libc::SIGINT,
            _ = self.terminate.recv() => nix::libc::SIGTERM,
        }
    }
}

/// Raises the soft limit on open files to the hard limit where allowed and
/// returns the soft limit in force (None where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return Some(hard),
            // macOS refuses an unlimited soft limit; keep what we have.
            Err(e) => debug!(error = %e, soft, hard, "could not raise the open-file limit"),
        }
    }
    Some(soft)
}

/// A connection cap safely under an open-file limit: a quarter of it (at
/// least 64 files) stays free for the database (each pooled SQLite
/// connection holds the file, its WAL and its shared memory), the
/// listener, the runtime and logs.
pub fn default_max_connections(fd_limit: Option<u64>) -> usize {
    let limit = fd_limit.unwrap_or(1024);
    let reserve = (limit / 4).max(64);
    usize::try_from(limit.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains as
/// described in the module's comment.
pub async fn serve(
    app: impl Endpoint + 'static,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    options: ServerOptions,
) -> io::Result<()> {
    let app: Arc<BoxEndpoint<'static, poem::Response>> = Arc::new(app.map_to_response().boxed());
    let local = listener.local_addr()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(options.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024);
    // hyper's own header timer starts when a connection goes idle, which
    // would fold the keep-alive timeout into it; ours tell the two apart.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let registry = Arc::new(Registry::default());
    let max = options.max_connections.max(1);
    let mut refused_since_warning = 0u64;
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    'serve: loop {
        // Connections asked to close to make room still hold their
        // descriptors: wait for them (briefly) before accepting, so the
        // loop never outruns the closes into EMFILE.
        let mut waited = false;
        loop {
            let (open, closing) = registry.counts();
            if open < max || closing == 0 || waited {
                break;
            }
            tokio::select! {
                () = &mut shutdown => break 'serve,
                () = registry.room.notified() => {},
                () = tokio::time::sleep(Duration::from_millis(50)) => waited = true,
            }
        }
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_out_of_files(&e) => {
                // Retrying at once would burn a core and answer nobody:
                // close an idle connection and wait for its descriptor, or
                // pause when there is none to close.
                let evicted = registry.evict_oldest_idle();
                warn_at_most_every(&mut last_warning, || {
                    warn!(error = %e, evicted, "out of file descriptors");
                });
                let pause = tokio::time::sleep(Duration::from_millis(50));
                if evicted {
                    tokio::select! {
                        () = registry.room.notified() => {},
                        () = pause => {},
                    }
                } else {
                    pause.await;
                }
                continue;
            }
            // A client that gave up while queued, and the like.
            Err(e) => {
                debug!(error = %e, "accept failed");
                continue;
            }
        };
        // At the cap, the oldest idle connection makes room; when every
        // one has a request in flight, the newcomer is closed at once.
        if registry.counts().0 >= max && !registry.evict_oldest_idle() {
            // Closed at once: the client may try again later.
            drop(socket);
            refused_since_warning += 1;
            warn_at_most_every(&mut last_warning, || {
                warn!(
                    max_connections = max,
                    refused = refused_since_warning,
                    "connection limit reached with every connection busy; refusing new ones"
                );
                refused_since_warning = 0;
            });
            continue;
        }
        let _ = socket.set_nodelay(true);
        let conn = registry.add();
        tokio::spawn(serve_connection(
            socket,
            local,
            peer,
            conn,
            registry.clone(),
            builder.clone(),
            app.clone(),
            options.clone(),
        ));
    }
    drop(listener);
    let open = registry.len();
    if open > 0 {
        info!(
            connections = open,
            grace_seconds = options.grace.as_secs_f64(),
            "draining connections"
        );
    }
    registry.drain();
    if tokio::time::timeout(options.grace, registry.closed())
        .await
        .is_err()
    {
        warn!(
            connections = registry.len(),
            "grace period over; dropping the requests still in flight"
        );
        registry.abort();
    }
    Ok(())
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

fn warn_at_most_every(last: &mut Option<Instant>, log: impl FnOnce()) {
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5)) {
        *last = Some(now);
        log();
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    socket: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Arc<BoxEndpoint<'static, poem::Response>>,
    options: ServerOptions,
) {
    // Deregisters however this task ends.
    let _registered = Registered {
        registry,
        id: conn.id,
    };
    let service = hyper::service::service_fn({
        let conn = conn.clone();
        move |req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::enter(conn.clone());
            let app = app.clone();
            async move {
                let req = poem::Request::from((
                    req,
                    LocalAddr(Addr::SocketAddr(local)),
                    RemoteAddr(Addr::SocketAddr(peer)),
                    Scheme::HTTP,
                ));
                let resp = hyper::Response::from(app.get_response(req).await);
                // In flight until the last byte of the body is handed over.
                Ok::<_, Infallible>(resp.map(|body| GuardedBody {
                    inner: body,
                    _in_flight: in_flight,
                }))
            }
        }
    });
    let io = TokioIo::new(TrackedIo {
        inner: socket,
        conn: conn.clone(),
    });
    let http = builder.serve_connection(io, service);
    tokio::pin!(http);
    // Set once hyper was asked to finish the request in flight and close.
    let mut closing = false;
    loop {
        let deadline = {
            let state = conn.lock();
            if state.abort {
                return;
            }
            let now = Instant::now();
            let idle = state.in_flight == 0;
            if idle && !closing && (state.evict || state.expiry(&options) <= now) {
                // Nothing in flight, so nothing is lost by dropping it; a
                // graceful close would wait for a half-sent head to end.
                if !state.evict {
                    debug!(%peer, "closing a connection that sent no request in time");
                }
                return;
            }
            if idle && closing && state.idle_since + options.header_read_timeout <= now {
                // Answered, but the client neither reads the rest nor
                // leaves.
                return;
            }
            if !closing && state.evict {
                closing = true;
                drop(state);
                // Answers the request in flight, then closes.
                http.as_mut().graceful_shutdown();
                continue;
            }
            match (idle, closing) {
                (false, _) => None,
                (true, false) => Some(state.expiry(&options)),
                (true, true) => Some(state.idle_since + options.header_read_timeout),
            }
        };
        tokio::select! {
            _ = &mut http => return,
            () = conn.changed.notified() => {},
            () = sleep_until_some(deadline) => {},
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One connection as the server tracks it.
struct Conn {
    id: u64,
    state: Mutex<ConnState>,
    /// Wakes the connection's task when its state changes.
    changed: Notify,
}

struct ConnState {
    /// Requests handed to the app and not answered yet.
    in_flight: usize,
    /// Since when the connection has had nothing to do (no request in
    /// flight, nothing written).
    idle_since: Instant,
    /// When the first byte of the next request's head arrived.
    head_since: Option<Instant>,
    /// Close when idle: to make room, or because the server stops.
    evict: bool,
    /// Drop at once: the grace period is over.
    abort: bool,
}

impl ConnState {
    /// When an idle connection is to be closed if nothing changes: the
    /// keep-alive timeout after it went idle, or the header-read timeout
    /// after the next request's head began (and the last byte went out).
    fn expiry(&self, options: &ServerOptions) -> Instant {
        match self.head_since {
            Some(t) => (t.max(self.idle_since)) + options.header_read_timeout,
            None => self.idle_since + options.keep_alive_timeout,
        }
    }
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        // The state stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn enter(conn: Arc<Conn>) -> Self {
        {
            let mut state = conn.lock();
            state.in_flight += 1;
            state.head_since = None;
        }
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_since = None;
            drop(state);
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight while it
/// is being written.
struct GuardedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when a request's head starts arriving and when the
/// response is still being written.
struct TrackedIo {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut state = self.conn.lock();
            if state.in_flight == 0 && state.head_since.is_none() {
                state.head_since = Some(Instant::now());
                drop(state);
                // The header timeout may end sooner than the idle one.
                self.conn.changed.notify_one();
            }
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            // A response still streaming out is not idleness.
            let mut state = self.conn.lock();
            if state.in_flight == 0 {
                state.idle_since = Instant::now();
            }
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            let mut state = self.conn.lock();
            if state.in_flight == 0 {
                state.idle_since = Instant::now();
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    inner: Mutex<RegistryInner>,
    /// Signalled when the last connection closes while draining.
    empty: Notify,
    /// Signalled when a connection closes.
    room: Notify,
}

#[derive(Default)]
struct RegistryInner {
    next_id: u64,
    conns: BTreeMap<u64, Arc<Conn>>,
    /// Connections asked to close to make room, not closed yet.
    closing: usize,
    draining: bool,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().conns.len()
    }

    fn add(&self) -> Arc<Conn> {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let conn = Arc::new(Conn {
            id,
            state: Mutex::new(ConnState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_since: None,
                evict: inner.draining,
                abort: false,
            }),
            changed: Notify::new(),
        });
        inner.conns.insert(id, conn.clone());
        conn
    }

    /// Connections open, and how many of them were asked to close.
    fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.conns.len(), inner.closing)
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(conn) = inner.conns.remove(&id)
            && conn.lock().evict
        {
            inner.closing = inner.closing.saturating_sub(1);
        }
        if inner.draining && inner.conns.is_empty() {
            self.empty.notify_one();
        }
        self.room.notify_one();
    }

    /// Asks the oldest connection with no request in flight (and not
    /// already closing) to close; false when there is none.
    fn evict_oldest_idle(&self) -> bool {
        let mut inner = self.lock();
        let found = inner.conns.values().find(|conn| {
            let mut state = conn.lock();
            if state.in_flight == 0 && !state.evict {
                state.evict = true;
                drop(state);
                conn.changed.notify_one();
                true
            } else {
                false
            }
        });
        if found.is_some() {
            inner.closing += 1;
            true
        } else {
            false
        }
    }

    /// Closes every connection once its request in flight is answered.
    fn drain(&self) {
        let mut inner = self.lock();
        inner.draining = true;
        if inner.conns.is_empty() {
            self.empty.notify_one();
        }
        for conn in inner.conns.values() {
            conn.lock().evict = true;
            conn.changed.notify_one();
        }
    }

    /// Drops every connection now.
    fn abort(&self) {
        for conn in self.lock().conns.values() {
            conn.lock().abort = true;
            conn.changed.notify_one();
        }
    }

    async fn closed(&self) {
        self.empty.notified().await;
    }
}

struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_files_for_the_database() {
        assert_eq!(default_max_connections(Some(256)), 192);
        assert_eq!(default_max_connections(Some(1024)), 768);
        // Small limits keep at least 64 files free, and a few connections.
        assert_eq!(default_max_connections(Some(128)), 64);
        assert_eq!(default_max_connections(Some(40)), 16);
        assert_eq!(default_max_connections(None), 768);
    }
}
