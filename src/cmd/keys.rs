//! `rchat keygen` and `rchat fingerprint`: the key files a person keeps between sessions.
//!
//! Turns the flags into calls to [`crate::crypto`] and prints what it returns; the key
//! handling itself (sizes, files, fingerprints) belongs to that module.

use std::process::ExitCode;

use crate::Result;
use crate::cli::{FingerprintArgs, KeygenArgs};
use crate::crypto::{self, Identity, KeyError};

/// `rchat keygen`.
pub fn keygen(args: &KeygenArgs) -> Result<ExitCode> {
    crypto::check_bits(args.bits, args.allow_weak_keys)?;
    if args.out.exists() && !args.force {
        return Err(KeyError::Exists { path: args.out.clone() }.into());
    }
    if args.bits < crypto::MIN_STRONG_BITS {
        eprintln!("rchat: warning: a {}-bit key is weak; use it only in a lab", args.bits);
    }
    let id = Identity::generate(args.bits)?;
    crypto::write_private_key(&args.out, &id.to_pem()?)
        .map_err(|source| KeyError::Write { path: args.out.clone(), source })?;
    println!("wrote {}-bit key to {}", args.bits, args.out.display());
    println!("fingerprint: {}", id.public().fingerprint);
    Ok(ExitCode::SUCCESS)
}

/// `rchat fingerprint`.
pub fn fingerprint(args: &FingerprintArgs) -> Result<ExitCode> {
    let (fp, bits) = crypto::fingerprint_of_file(&args.file)?;
    println!("{fp} ({bits}-bit RSA, {})", args.file.display());
    Ok(ExitCode::SUCCESS)
}
