//! A VFS for the reader connections that reads the database file through
//! one memory mapping shared by every connection in the process.
//!
//! SQLite's own `mmap_size` maps the file once per connection, and every
//! mapped page a connection touches counts in the process's RSS once per
//! mapping: 8 readers on a 1.7 GB file measured 13 GiB of RSS. This VFS
//! is SQLite's unix VFS with two methods replaced, `xFetch` and
//! `xUnfetch`: pages come from a single read-only `MAP_SHARED` mapping of
//! the file, made once per file and kept until its last connection closes.
//! Every other call goes to the unix VFS untouched, so locking, the WAL and
//! writes behave exactly as they do without it.
//!
//! The mapping is as long as the connection's `mmap_size` asks, which may
//! run past the end of the file: Linux allows that, and the file's growth
//! shows in the mapping with no remap, so a page handed out stays valid for
//! as long as SQLite holds it. Only a page that lies wholly inside the file
//! (by the last `fstat`) is handed out; touching the mapping past the end
//! of the file would raise SIGBUS, and SQLite reads anything else with a
//! syscall, as without a mapping.

use std::{
    collections::HashMap,
    ffi::{CStr, c_char, c_int, c_void},
    ptr,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicI64, Ordering},
    },
};

use nix::libc;
use r2d2_sqlite::rusqlite::ffi;

/// The name the reader connections open the file with.
pub(crate) const VFS_NAME: &CStr = c"griot-shared-mmap";

/// SQLite may read a few bytes past a page of a corrupt file; its own
/// mapping keeps this much addressable memory after every page it hands
/// out, and so does this one.
const SLACK: i64 = 256;

/// Registers the VFS with SQLite (once per process) and says whether it
/// can be used: it needs the default VFS to be the unix one it wraps.
pub(crate) fn register() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find initialises SQLite and returns the
        // default VFS, which lives as long as the process.
        let unix = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
        if unix.is_null() {
            return false;
        }
        // SAFETY: `unix` is a registered VFS, so it points to a valid
        // sqlite3_vfs and its name to a NUL-terminated string.
        let (base, name) = unsafe { (*unix, CStr::from_ptr((*unix).zName)) };
        if name != c"unix" {
            return false;
        }
        let size = std::mem::offset_of!(File, real) + base.szOsFile as usize;
        let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
            szOsFile: size as c_int,
            pNext: ptr::null_mut(),
            zName: VFS_NAME.as_ptr(),
            // xOpen reaches the unix VFS through here.
            pAppData: unix.cast(),
            xOpen: Some(open),
            ..base
        }));
        // SAFETY: the VFS is leaked, so it outlives every connection.
        unsafe { ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK }
    })
}

/// One open file: the unix VFS's own file struct, `real`, is the last
/// field and takes the rest of the `szOsFile` bytes SQLite allocated.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// What `PRAGMA mmap_size` last asked of this connection, in bytes.
    limit: i64,
    /// The file's name, valid until `xClose` (SQLite guarantees it).
    path: *const c_char,
    /// The shared mapping, made at this connection's first fetch.
    mapping: Option<Arc<Mapping>>,
    /// The mapping was tried and could not be made; reads use syscalls.
    unmappable: bool,
    real: ffi::sqlite3_file,
}

/// A read-only mapping of one database file, shared by its connections.
struct Mapping {
    base: *mut c_void,
    len: usize,
    /// The file's size at the last look: no page past it is handed out.
    file_size: AtomicI64,
    key: (u64, u64),
}

// SAFETY: the mapping is read-only and never moves or shrinks while an Arc
// to it lives; the size is atomic.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping made in `Mapping::of`, and no
        // connection holds a page of it any more (each holds an Arc).
        unsafe { libc::munmap(self.base, self.len) };
        let mut all = mappings().lock().unwrap_or_else(|p| p.into_inner());
        if all.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            all.remove(&self.key);
        }
    }
}

/// Every file mapped in this process, by (device, inode).
type Mappings = Mutex<HashMap<(u64, u64), Weak<Mapping>>>;

fn mappings() -> &'static Mappings {
    static ALL: OnceLock<Mappings> = OnceLock::new();
    ALL.get_or_init(Default::default)
}

/// Says once per process that reads go by syscall: slower, not wrong.
fn warn_unmapped(reason: &dyn std::fmt::Display) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %reason,
            "the database file could not be mapped (--mmap-mib); reads fall back to a \
             syscall per page"
        );
    }
}

fn stat_fd(fd: c_int) -> Option<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat writes a whole stat on success; any fd is safe to ask.
    (unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0).then(|| unsafe { st.assume_init() })
}

fn stat_path(path: *const c_char) -> Option<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `path` is SQLite's NUL-terminated name of the open file.
    (unsafe { libc::stat(path, st.as_mut_ptr()) } == 0).then(|| unsafe { st.assume_init() })
}

impl Mapping {
    /// The mapping of the file open as `fd`, made if this process has none
    /// yet; at least `len` bytes long unless an existing one is shorter.
    fn of(fd: c_int, st: &libc::stat, len: usize) -> Option<Arc<Mapping>> {
        let key = (st.st_dev, st.st_ino);
        let mut all = mappings().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = all.get(&key).and_then(Weak::upgrade) {
            return Some(found);
        }
        // SAFETY: a fresh read-only shared mapping of an open file; the
        // kernel picks the address. The fd may close later: the mapping
        // keeps its own reference to the file.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            warn_unmapped(&std::io::Error::last_os_error());
            return None;
        }
        let mapping = Arc::new(Mapping {
            base,
            len,
            file_size: AtomicI64::new(st.st_size),
            key,
        });
        all.insert(key, Arc::downgrade(&mapping));
        Some(mapping)
    }

    /// Whether bytes up to `end` lie inside both the mapping and the file,
    /// looking at the file's size again if it may have grown.
    fn covers(&self, end: i64, fd: c_int) -> bool {
        if end > self.len as i64 {
            return false;
        }
        if end <= self.file_size.load(Ordering::Acquire) {
            return true;
        }
        self.refresh(fd);
        end <= self.file_size.load(Ordering::Acquire)
    }

    fn refresh(&self, fd: c_int) {
        if let Some(st) = stat_fd(fd) {
            self.file_size.store(st.st_size, Ordering::Release);
        }
    }
}

/// The descriptor the unix VFS opened the file on. `unixFile` starts with
/// three pointers and then the descriptor; the caller checks that it
/// names the file it opened, so a different layout only turns the mapping
/// off.
///
/// # Safety
/// `real` must be a file the unix VFS opened.
unsafe fn unix_fd(real: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the caller, `real` is a unixFile, at least this long.
    unsafe {
        real.cast::<u8>()
            .add(3 * std::mem::size_of::<*const ()>())
            .cast::<c_int>()
            .read()
    }
}

/// # Safety
/// `f` must be a `File` this VFS opened.
unsafe fn file<'a>(f: *mut ffi::sqlite3_file) -> &'a mut File {
    // SAFETY: per the caller.
    unsafe { &mut *f.cast::<File>() }
}

/// The unix VFS's methods for the wrapped file.
///
/// # Safety
/// `f` must be an open `File` this VFS opened.
unsafe fn real<'a>(
    f: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods) {
    // SAFETY: per the caller; the unix VFS set `pMethods` when it opened.
    unsafe {
        let real = &raw mut file(f).real;
        (real, &*(*real).pMethods)
    }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes this VFS (whose pAppData is the unix VFS) and
    // `szOsFile` bytes at `f`.
    unsafe {
        let unix = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        let unix_open = (*unix).xOpen.expect("the unix VFS opens files");
        if flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
            // The WAL, journals and temporary files are the unix VFS's own.
            return unix_open(unix, name, f, flags, out_flags);
        }
        let me = f.cast::<File>();
        ptr::write(
            me,
            File {
                base: ffi::sqlite3_file {
                    pMethods: ptr::null(),
                },
                limit: 0,
                path: name,
                mapping: None,
                unmappable: false,
                real: ffi::sqlite3_file {
                    pMethods: ptr::null(),
                },
            },
        );
        let rc = unix_open(unix, name, &raw mut (*me).real, flags, out_flags);
        if !(*me).real.pMethods.is_null() {
            // SQLite calls xClose whenever pMethods is set, even after a
            // failed open, so the unix file is always closed.
            (*me).base.pMethods = &METHODS;
        }
        rc
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn fetch(
    f: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a File this VFS opened, with `out`
    // valid to write.
    unsafe {
        *out = ptr::null_mut();
        let me = file(f);
        let end = offset + i64::from(amount) + SLACK;
        if offset < 0 || end > me.limit {
            return ffi::SQLITE_OK;
        }
        let fd = unix_fd(&raw mut me.real);
        if me.mapping.is_none() && !me.unmappable {
            me.mapping = match (stat_fd(fd), stat_path(me.path)) {
                (Some(a), Some(b)) if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) => {
                    Mapping::of(fd, &a, me.limit as usize)
                }
                _ => {
                    warn_unmapped(&"its descriptor could not be told from its path");
                    None
                }
            };
            me.unmappable = me.mapping.is_none();
        }
        if let Some(mapping) = &me.mapping
            && mapping.covers(end, fd)
        {
            *out = mapping.base.cast::<u8>().add(offset as usize).cast();
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn unfetch(f: *mut ffi::sqlite3_file, _offset: i64, page: *mut c_void) -> c_int {
    // SAFETY: SQLite calls this on a File this VFS opened.
    unsafe {
        let me = file(f);
        // A page given back needs nothing. No page means "the file may
        // have changed size behind your back": look again.
        if page.is_null()
            && let Some(mapping) = &me.mapping
        {
            mapping.refresh(unix_fd(&raw mut me.real));
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: SQLite calls this on a File this VFS opened, with `arg` as
    // the op defines it (an i64 for MMAP_SIZE).
    unsafe {
        if op == ffi::SQLITE_FCNTL_MMAP_SIZE {
            // Kept from the unix VFS, so it never maps the file itself.
            let me = file(f);
            let asked = arg.cast::<i64>();
            if *asked >= 0 {
                me.limit = *asked;
            }
            *asked = me.limit;
            return ffi::SQLITE_OK;
        }
        let (real, m) = real(f);
        m.xFileControl.expect("unix file control")(real, op, arg)
    }
}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each File once and touches it no more; SQLite
    // has given back every page it fetched.
    unsafe {
        let (real, m) = real(f);
        let rc = m.xClose.expect("unix close")(real);
        ptr::drop_in_place(&raw mut file(f).mapping);
        rc
    }
}

/// The rest go to the unix VFS as they are.
macro_rules! forward {
    ($($name:ident => $method:ident ($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite calls this on an open File this VFS opened.
            unsafe {
                let (real, m) = real(f);
                m.$method.expect(stringify!($method))(real $(, $arg)*)
            }
        }
    )*};
}

forward! {
    read => xRead(buf: *mut c_void, amount: c_int, offset: i64) -> c_int;
    write => xWrite(buf: *const c_void, amount: c_int, offset: i64) -> c_int;
    truncate => xTruncate(size: i64) -> c_int;
    sync => xSync(flags: c_int) -> c_int;
    file_size => xFileSize(size: *mut i64) -> c_int;
    lock => xLock(level: c_int) -> c_int;
    unlock => xUnlock(level: c_int) -> c_int;
    check_reserved_lock => xCheckReservedLock(out: *mut c_int) -> c_int;
    sector_size => xSectorSize() -> c_int;
    device_characteristics => xDeviceCharacteristics() -> c_int;
    shm_map => xShmMap(region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int;
    shm_lock => xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int;
    shm_unmap => xShmUnmap(delete: c_int) -> c_int;
}

unsafe extern "C" fn shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls this on an open File this VFS opened.
    unsafe {
        let (real, m) = real(f);
        m.xShmBarrier.expect("unix shm barrier")(real)
    }
}
