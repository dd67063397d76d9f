//! A file system that loses what was not synced, for power-loss tests (the idea of LazyFS): a
//! FUSE pass-through over a real directory whose written files are held in memory, like a page
//! cache that never writes back on its own: fsync writes through what changed since the last
//! one and syncs it; a clean file leaves memory when it is closed. [`Mounted::cut`]
//! unmounts and throws away every unsynced byte, leaving the directory as a machine that lost
//! power would find it: what was synced, and the names (creations, renames and deletions are
//! applied to the directory at once, as a journalled file system commits its metadata; a file
//! created and never synced is found empty).
//!
//! The device-mapper targets made for this (`dm-flakey`, `dm-log-writes`) need a kernel with
//! device-mapper; these machines have none (no `/dev/mapper/control`), but they have FUSE.
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

/// Attributes are never cached by the kernel: sizes change with every buffered write.
const TTL: Duration = Duration::ZERO;

#[derive(Default)]
struct Inner {
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next: u64,
    /// Written files' contents by inode (the whole file).
    cached: HashMap<u64, Cached>,
    /// Bytes written through by fsync, for the test's report.
    synced_bytes: u64,
}

impl Inner {
    fn ino(&mut self, path: &Path) -> u64 {
        if let Some(i) = self.inos.get(path) {
            return *i;
        }
        self.next += 1;
        let i = self.next;
        self.inos.insert(path.to_path_buf(), i);
        self.paths.insert(i, path.to_path_buf());
        i
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn forget_path(&mut self, path: &Path) {
        if let Some(i) = self.inos.remove(path) {
            self.paths.remove(&i);
            self.cached.remove(&i);
        }
    }

    fn attr(&self, ino: u64, md: &Metadata) -> FileAttr {
        let size = self
            .cached
            .get(&ino)
            .map_or(md.len(), |c| c.buf.len() as u64);
        let time = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(md.atime()),
            mtime: time(md.mtime()),
            ctime: time(md.ctime()),
            crtime: UNIX_EPOCH,
            kind: if md.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink() as u32,
            uid: md.uid(),
            gid: md.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The file's contents in memory, to be changed from `from` on (loaded on first use).
    fn change(&mut self, ino: u64, path: &Path, from: usize) -> &mut Vec<u8> {
        let c = self.cached.entry(ino).or_insert_with(|| Cached {
            buf: fs::read(path).unwrap_or_default(),
            unsynced_from: None,
        });
        c.unsynced_from = Some(c.unsynced_from.map_or(from, |f| f.min(from)));
        &mut c.buf
    }
}

struct Cached {
    buf: Vec<u8>,
    /// Changed from this offset on since the last fsync (None: clean).
    unsynced_from: Option<usize>,
}

struct PowerCutFs {
    inner: Arc<Mutex<Inner>>,
}

impl PowerCutFs {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// A name removed from the directory at once (metadata), with what memory held of it.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: impl FnOnce(&Path) -> io::Result<()>,
        reply: ReplyEmpty,
    ) {
        let mut inner = self.lock();
        let result = inner.path(parent).and_then(|p| {
            let path = p.join(name);
            remove(&path).map_err(Errno::from)?;
            inner.forget_path(&path);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn entry_of(inner: &mut Inner, path: &Path) -> Result<FileAttr, Errno> {
    let md = fs::symlink_metadata(path).map_err(Errno::from)?;
    let ino = inner.ino(path);
    Ok(inner.attr(ino, &md))
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut inner = self.lock();
        match inner
            .path(parent)
            .and_then(|p| entry_of(&mut inner, &p.join(name)))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut inner = self.lock();
        match inner.path(ino).and_then(|p| entry_of(&mut inner, &p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut inner = self.lock();
        let result = inner.path(ino).and_then(|path| {
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(Errno::from)?;
            }
            if let Some(size) = size {
                // A truncation is a change of contents: lost too unless synced.
                inner
                    .change(ino.0, &path, size as usize)
                    .resize(size as usize, 0);
            }
            entry_of(&mut inner, &path)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut inner = self.lock();
        let result = inner.path(parent).and_then(|p| {
            let path = p.join(name);
            fs::create_dir(&path).map_err(Errno::from)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(Errno::from)?;
            entry_of(&mut inner, &path)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_file(p), reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_dir(p), reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut inner = self.lock();
        let result = inner.path(parent).and_then(|from_dir| {
            let from = from_dir.join(name);
            let to = inner.path(newparent)?.join(newname);
            fs::rename(&from, &to).map_err(Errno::from)?;
            inner.forget_path(&to);
            if let Some(i) = inner.inos.remove(&from) {
                inner.inos.insert(to.clone(), i);
                inner.paths.insert(i, to);
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut inner = self.lock();
        match inner.path(ino) {
            Ok(path) => {
                if flags.0 & libc::O_TRUNC != 0 {
                    inner.change(ino.0, &path, 0).clear();
                }
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let inner = self.lock();
        let path = match inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if let Some(c) = inner.cached.get(&ino.0) {
            let start = (offset as usize).min(c.buf.len());
            let end = (start + size as usize).min(c.buf.len());
            return reply.data(&c.buf[start..end]);
        }
        let mut out = vec![0; size as usize];
        let result = File::open(&path).and_then(|f| {
            let mut n = 0;
            while n < out.len() {
                let got = f.read_at(&mut out[n..], offset + n as u64)?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            Ok(n)
        });
        match result {
            Ok(n) => reply.data(&out[..n]),
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut inner = self.lock();
        let path = match inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let (start, end) = (offset as usize, offset as usize + data.len());
        let buf = inner.change(ino.0, &path, start);
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[start..end].copy_from_slice(data);
        reply.written(data.len() as u32)
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut inner = self.lock();
        let path = match inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let Some(c) = inner.cached.get_mut(&ino.0) else {
            return reply.ok();
        };
        let Some(from) = c.unsynced_from else {
            return reply.ok();
        };
        let from = from.min(c.buf.len());
        let result = OpenOptions::new().write(true).open(&path).and_then(|f| {
            f.write_all_at(&c.buf[from..], from as u64)?;
            f.set_len(c.buf.len() as u64)?;
            f.sync_all()
        });
        match result {
            Ok(()) => {
                c.unsynced_from = None;
                inner.synced_bytes += (c.buf.len() - from) as u64;
                reply.ok()
            }
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // A clean file leaves memory; one with unsynced changes stays until fsync or the cut.
        let mut inner = self.lock();
        if inner
            .cached
            .get(&ino.0)
            .is_some_and(|c| c.unsynced_from.is_none())
        {
            inner.cached.remove(&ino.0);
        }
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) syncs nothing.
        reply.ok()
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut inner = self.lock();
        let path = match inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        let listed = match fs::read_dir(&path) {
            Ok(l) => l,
            Err(e) => return reply.error(Errno::from(e)),
        };
        for e in listed.flatten() {
            let kind = if e.file_type().is_ok_and(|t| t.is_dir()) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            let child = inner.ino(&e.path());
            entries.push((child, kind, e.file_name()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.lock().paths[&1].clone();
        let c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap();
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return reply.error(Errno::EIO);
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        )
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut inner = self.lock();
        let result = inner.path(parent).and_then(|p| {
            let path = p.join(name);
            let existed = path.exists();
            OpenOptions::new()
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .mode(mode)
                .open(&path)
                .map_err(Errno::from)?;
            let ino = inner.ino(&path);
            if existed && flags & libc::O_TRUNC != 0 {
                inner.change(ino, &path, 0).clear();
            }
            entry_of(&mut inner, &path)
        });
        match result {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut inner = self.lock();
        let path = match inner.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        // Preallocation that keeps the size (RocksDB's for its logs) changes nothing visible.
        if mode & libc::FALLOC_FL_KEEP_SIZE == 0 {
            let end = (offset + length) as usize;
            let buf = inner.change(ino.0, &path, end);
            if buf.len() < end {
                buf.resize(end, 0);
            }
        }
        reply.ok()
    }
}

/// A [`PowerCutFs`] mounted over `backing`.
pub struct Mounted {
    session: BackgroundSession,
    inner: Arc<Mutex<Inner>>,
    mountpoint: PathBuf,
}

/// What a power cut threw away.
#[derive(Debug)]
pub struct Cut {
    /// Files whose unsynced changes were lost, and the bytes from each one's first unsynced
    /// change to its end.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Bytes fsync wrote through while mounted.
    pub synced_bytes: u64,
}

impl Mounted {
    /// Mounts the file system at `mountpoint` (an empty directory) over `backing`. Needs root
    /// (a direct mount(2), no fusermount) and /dev/fuse.
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<Mounted> {
        let mut inner = Inner {
            next: 1,
            ..Inner::default()
        };
        inner.paths.insert(1, backing.to_path_buf());
        inner.inos.insert(backing.to_path_buf(), 1);
        let inner = Arc::new(Mutex::new(inner));
        let fs = PowerCutFs {
            inner: inner.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("vaka-powercut".into())];
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(Mounted {
            session,
            inner,
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// The power goes: every unsynced byte is dropped, then the file system is unmounted.
    /// Whatever had the files open must be dead by now (SIGKILLed).
    pub fn cut(self) -> Cut {
        let (names, bytes, synced_bytes) = {
            let mut inner = self.inner.lock().unwrap();
            let cached: Vec<(u64, Cached)> = inner.cached.drain().collect();
            let mut names = Vec::new();
            let mut bytes = 0;
            for (ino, c) in cached {
                if let Some(from) = c.unsynced_from {
                    bytes += (c.buf.len() - from.min(c.buf.len())) as u64;
                    let name = inner.paths.get(&ino).and_then(|p| p.file_name());
                    names.push(name.map_or("?".into(), |n| n.to_string_lossy().into_owned()));
                }
            }
            names.sort();
            (names, bytes, inner.synced_bytes)
        };
        match self.session.umount_and_join() {
            Ok(()) => {}
            // The kernel (6.18 here) sometimes ends the session with ECONNABORTED rather than
            // ENODEV, which fuser reports as an error; what matters is that the mount is gone.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
                let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
                let at = self.mountpoint.to_string_lossy().into_owned();
                assert!(
                    !mounts
                        .lines()
                        .any(|l| l.split(' ').nth(1) == Some(at.as_str())),
                    "still mounted after the cut ({e}): {at}"
                );
            }
            Err(e) => panic!("unmount after the cut: {e}"),
        }
        Cut {
            files: names,
            bytes,
            synced_bytes,
        }
    }
}
