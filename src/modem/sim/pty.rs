//! The pseudo-terminal the simulated modem sits behind, and the symlink that names it.
//!
//! Contracts:
//! - The master is non-blocking and driven through tokio's [`AsyncFd`]; the simulator keeps its
//!   own slave descriptor open, so reads never fail with `EIO` while no host has the port open.
//! - The slave starts raw (no echo, no CR/LF translation, no line buffering): a host that does not
//!   set termios itself still sees exactly the bytes the modem wrote.
//! - [`Pty::open`] replaces a stale symlink at the link path atomically, and refuses to replace
//!   anything that is not a symlink. Dropping the [`Pty`] closes both ends; the link is removed by
//!   [`remove_link`].

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// One pseudo-terminal pair.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    _slave: OwnedFd,
    slave_path: PathBuf,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Puts a terminal in raw mode (`cfmakeraw`), keeping the receiver on.
pub fn set_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: `termios` is plain data; tcgetattr fills it before use.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal descriptor owned by the caller; `t` is a valid pointer.
    check(unsafe { libc::tcgetattr(fd, &mut t) })?;
    // SAFETY: `t` is a valid termios.
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_cflag |= libc::CREAD | libc::CLOCAL;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: as above.
    check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) })?;
    Ok(())
}

impl Pty {
    /// Opens a new pair and points `link` at its slave.
    pub fn open(link: &Path) -> io::Result<Pty> {
        let mut master: RawFd = -1;
        let mut slave: RawFd = -1;
        // SAFETY: openpty writes two descriptors; name, termios and winsize may be null.
        check(unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        // SAFETY: openpty succeeded, so both descriptors are open and ours alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        for fd in [&master, &slave] {
            // SAFETY: fd is open; FD_CLOEXEC keeps it out of child processes.
            check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
        set_raw(slave.as_raw_fd())?;
        let slave_path = slave_name(&slave)?;
        // SAFETY: master is open.
        let flags = check(unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) })?;
        // SAFETY: master is open.
        check(unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
        // SAFETY: the descriptor is owned by the OwnedFd the AsyncFd takes, so it stays open and
        // the same until the AsyncFd drops.
        let master = unsafe {
            AsyncFd::register_with_interest(master, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(io::Error::from)?;
        point_link(link, &slave_path)?;
        Ok(Pty {
            master,
            _slave: slave,
            slave_path,
        })
    }

    /// The slave device (`/dev/pts/N`).
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Reads what the host wrote. Cancel safe: no bytes are lost when the future is dropped.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: buf is valid for buf.len() bytes; fd is open.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `bytes` (waits while the terminal's buffer is full).
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.master.writable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: bytes is valid for bytes.len() bytes; fd is open.
                let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

fn slave_name(slave: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is valid for its length; ttyname_r NUL-terminates on success.
    let err = unsafe { libc::ttyname_r(slave.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    // SAFETY: ttyname_r succeeded, so buf holds a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(PathBuf::from(name.to_string_lossy().into_owned()))
}

/// Points `link` at `target`, replacing an existing symlink (never a file or directory).
fn point_link(link: &Path, target: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(m) if !m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a symlink", link.display()),
            ));
        }
        _ => {}
    }
    let mut tmp = link.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Removes `link` if it is a symlink; anything else is left alone.
pub fn remove_link(link: &Path) {
    if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        let _ = std::fs::remove_file(link);
    }
}
