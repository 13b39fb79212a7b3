//! Writes the model's web and mail content: vhost trees and Maildirs, with
//! the hard cases a real server has. Every byte, name, mode and mtime comes
//! from the seed, so the same seed writes the same trees.

use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::model::{Domain, HostingKind, Model, SOURCE_IPS};
use super::rng::Rng;
use super::{Result, SandboxError};

/// 2019-01-01T00:00:00Z: every generated mtime lies in the four years after.
const EPOCH: i64 = 1_546_300_800;

pub fn write_all(model: &Model, seed: u64, vhosts: &Path, mailnames: &Path) -> Result<()> {
    let mut rng = Rng::new(seed).fork("content");
    for domain in &model.domains {
        let mut drng = rng.fork(&domain.name);
        if let HostingKind::Virtual { ip, .. } = domain.hosting {
            let root = vhosts.join(&domain.name);
            vhost(&mut drng, model, domain, SOURCE_IPS[ip].0, &root)?;
            set_mtimes(&root, &domain.name)?;
        }
        let boxes: Vec<_> = domain.mail.iter().filter(|m| m.postbox).collect();
        if !boxes.is_empty() {
            let root = mailnames.join(&domain.name);
            for mailbox in boxes {
                maildir(
                    &mut drng,
                    model.sizes.messages_per_box,
                    &domain.name,
                    &mailbox.name,
                    &root.join(&mailbox.name),
                )?;
            }
            set_mtimes(&root, &format!("mail/{}", domain.name))?;
        }
    }
    set_mtime(vhosts, EPOCH)?;
    set_mtime(mailnames, EPOCH)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        what: format!("write {}", path.display()),
        source,
    }
}

fn dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(io(path))
}

fn file(rng: &mut Rng, path: &Path, size: u64, text: bool) -> Result<()> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    let mut buf = vec![0u8; (size as usize).min(1 << 20)];
    let mut left = size;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        rng.fill(&mut buf[..n], text);
        f.write_all(&buf[..n]).map_err(io(path))?;
        left -= n as u64;
    }
    Ok(())
}

fn vhost(rng: &mut Rng, model: &Model, domain: &Domain, ip: &str, root: &Path) -> Result<()> {
    for sub in [
        "httpdocs",
        "httpsdocs",
        "cgi-bin",
        "private",
        "conf",
        "error_docs",
        "statistics/logs",
        "anon_ftp/pub",
    ] {
        dir(&root.join(sub))?;
    }
    let docs = root.join("httpdocs");
    fs::write(
        docs.join("index.html"),
        format!(
            "<html><body><h1>{}</h1></body></html>\n",
            domain.display_name
        ),
    )
    .map_err(io(&docs))?;
    for code in ["400", "403", "404", "500"] {
        let p = root.join("error_docs").join(format!("{code}.html"));
        fs::write(&p, format!("<h1>Error {code}</h1>\n")).map_err(io(&p))?;
    }
    let conf = root.join("conf/vhost.conf");
    fs::write(
        &conf,
        format!(
            "<VirtualHost {ip}:80>\n  ServerName {name}\n  ServerAlias www.{name}\n  DocumentRoot {docroot}\n</VirtualHost>\n\
             # legacy front end, kept for old clients\n<VirtualHost 192.0.2.100:80>\n  ServerName legacy.{name}\n</VirtualHost>\n",
            name = domain.name,
            docroot = docs.display()
        ),
    )
    .map_err(io(&conf))?;
    let script = root.join("cgi-bin/test.cgi");
    fs::write(
        &script,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho ok\n",
    )
    .map_err(io(&script))?;
    chmod(&script, 0o755)?;

    // The bulk: small files spread over nested directories.
    let sizes = model.sizes;
    let count = if domain.big {
        sizes.files_big_domain
    } else {
        sizes.files_per_domain
    };
    for i in 0..count {
        let sub = docs.join(format!("section-{:02}/part-{:02}", i % 37, (i / 37) % 23));
        dir(&sub)?;
        // One file in five is media (incompressible), and larger: by bytes
        // a little over half of a tree, as on real sites.
        let max = sizes.max_file_bytes;
        let (name, text, size) = if i % 5 == 0 {
            (
                format!("image-{i:05}.png"),
                false,
                rng.range(max, 4 * max + 1),
            )
        } else {
            (format!("page-{i:05}.html"), true, rng.range(0, max + 1))
        };
        file(rng, &sub.join(name), size, text)?;
    }
    for sub in &domain.subdomains {
        let p = root.join("subdomains").join(sub).join("httpdocs");
        dir(&p)?;
        let index = p.join("index.html");
        fs::write(&index, format!("<h1>{sub}.{}</h1>\n", domain.name)).map_err(io(&index))?;
    }
    if domain.big {
        let downloads = docs.join("downloads");
        dir(&downloads)?;
        for (i, &size) in sizes.big_files.iter().enumerate() {
            file(
                rng,
                &downloads.join(format!("archive-{i}.bin")),
                size,
                false,
            )?;
        }
    }
    if domain.hard_cases {
        hard_cases(rng, &docs)?;
    }
    chmod(&root.join("private"), 0o700)?;
    Ok(())
}

/// Names, links, modes and holes that naive copies get wrong.
fn hard_cases(rng: &mut Rng, docs: &Path) -> Result<()> {
    let odd = docs.join("odd");
    dir(&odd)?;
    file(rng, &odd.join("name with spaces.txt"), 100, true)?;
    file(rng, &odd.join("new\nline.txt"), 50, true)?;
    let latin1 = odd.join(OsStr::from_bytes(b"caf\xe9-latin1.txt"));
    file(rng, &latin1, 70, true)?;
    file(rng, &odd.join("zero-bytes.bin"), 0, false)?;
    dir(&odd.join("empty-dir"))?;
    dir(&odd.join("nested/empty/deeper"))?;

    // A sparse file: 32 MiB long, three small islands of data.
    let sparse = odd.join("sparse.img");
    let mut f = fs::File::create(&sparse).map_err(io(&sparse))?;
    f.set_len(32 << 20).map_err(io(&sparse))?;
    for offset in [0u64, 10 << 20, (32 << 20) - 4096] {
        f.seek(SeekFrom::Start(offset)).map_err(io(&sparse))?;
        let mut island = vec![0u8; 4096];
        rng.fill(&mut island, false);
        f.write_all(&island).map_err(io(&sparse))?;
    }
    drop(f);

    let a = odd.join("hardlink-a.txt");
    file(rng, &a, 300, true)?;
    fs::hard_link(&a, odd.join("hardlink-b.txt")).map_err(io(&a))?;
    symlink("../index.html", odd.join("link-to-index")).map_err(io(&odd))?;
    symlink("hardlink-a.txt", odd.join("relative-link")).map_err(io(&odd))?;
    symlink("/etc/passwd", odd.join("link-outside")).map_err(io(&odd))?;
    symlink("no-such-target", odd.join("dangling-link")).map_err(io(&odd))?;

    for (name, mode) in [
        ("setuid.sh", 0o4755),
        ("setgid.sh", 0o2755),
        ("secret.txt", 0o600),
        ("readonly.txt", 0o400),
        ("world.txt", 0o666),
    ] {
        let p = odd.join(name);
        file(rng, &p, 64, true)?;
        chmod(&p, mode)?;
    }
    let locked = odd.join("private-dir");
    dir(&locked)?;
    file(rng, &locked.join("inside.txt"), 10, true)?;
    chmod(&locked, 0o700)?;
    Ok(())
}

fn maildir(rng: &mut Rng, messages: u64, domain: &str, mailbox: &str, root: &Path) -> Result<()> {
    let md = root.join("Maildir");
    for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
        dir(&md.join(sub))?;
    }
    for i in 0..messages {
        let body_len = rng.range(200, 20_000) as usize;
        let mut body = vec![0u8; body_len];
        rng.fill(&mut body, true);
        // Every fourth message carries an attachment (base64 of bytes that
        // do not compress, as photos and PDFs).
        if i % 4 == 3 {
            let mut raw = vec![0u8; rng.range(4_000, 60_000) as usize];
            rng.fill(&mut raw, false);
            let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw);
            body.extend_from_slice(b"\r\n--part\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n");
            for line in encoded.as_bytes().chunks(76) {
                body.extend_from_slice(line);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"--part--\r\n");
        }
        let mut msg = format!(
            "From: sender{i}@partner.example\r\nTo: {mailbox}@{domain}\r\nSubject: message {i}\r\n\
             Message-ID: <{i}.{}@partner.example>\r\n\r\n",
            rng.hex(6)
        )
        .into_bytes();
        msg.extend_from_slice(&body);
        let (sub, flags) = if i % 3 == 0 {
            ("new", "")
        } else {
            ("cur", ":2,S")
        };
        let name = format!(
            "{}.M{i}P{}.sandbox,S={}{flags}",
            EPOCH + i as i64 * 3600,
            1000 + i,
            msg.len()
        );
        let p = md.join(sub).join(name);
        fs::write(&p, &msg).map_err(io(&p))?;
    }
    Ok(())
}

fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Sets every entry's mtime (symlinks included, directories last) from its
/// path, so the trees are the same on every run.
fn set_mtimes(root: &Path, label: &str) -> Result<()> {
    let mut entries = Vec::new();
    collect(root, &mut entries)?;
    // Deepest first: setting a directory's mtime after its children.
    entries.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    entries.push(root.to_owned());
    for path in entries {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label
            .bytes()
            .chain(rel.as_os_str().as_bytes().iter().copied())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let secs = EPOCH + (h % (4 * 365 * 86_400)) as i64;
        set_mtime(&path, secs)?;
    }
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let is_dir = entry.file_type().map_err(io(&path))?.is_dir();
        if is_dir {
            collect(&path, out)?;
        }
        out.push(path);
    }
    Ok(())
}

fn set_mtime(path: &Path, secs: i64) -> Result<()> {
    crate::transfer::set_mtime(path, secs).map_err(|source| SandboxError::Io {
        what: format!("set the mtime of {}", path.display()),
        source,
    })
}
