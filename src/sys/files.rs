//! Opening files we write as root (state, events) without following symbolic links: a link
//! planted where one of them goes would otherwise let whoever can write that directory make us
//! overwrite or append to any file. A link is refused with an error that says so.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` with `options`, refusing a symbolic link as the last component (`O_NOFOLLOW`).
pub(crate) fn open_nofollow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    options
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a symbolic link: refusing to follow it",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_refused_with_a_clear_error_and_a_file_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_nofollow(OpenOptions::new().append(true), &link).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("link is a symbolic link: refusing to follow it"),
            "{e}"
        );
        assert!(open_nofollow(OpenOptions::new().append(true), &target).is_ok());
    }
}
