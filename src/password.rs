//! API passwords: the argon2id hash `hostmig hash-password` prints and
//! `api.admin_password_hash` holds, its check at start, and verification.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Whether `password` matches the PHC `hash` (false for a hash that does
/// not parse).
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks that a configured hash is an argon2 PHC string hostmig can verify.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|_| "is not a PHC password hash".to_owned())?;
    if !matches!(
        parsed.algorithm.as_str(),
        "argon2id" | "argon2i" | "argon2d"
    ) {
        return Err("must be an argon2 hash".to_owned());
    }
    argon2::Params::try_from(&parsed)
        .map_err(|_| "has argon2 parameters that are out of range".to_owned())?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("lacks its salt or hash".to_owned());
    }
    Ok(())
}

/// The argon2id hash of a password, as `hostmig hash-password` prints it.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness available: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("pw").expect("hash");
        let b = hash_password("pw").expect("hash");
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(check_password_hash(&a).is_ok());
        assert!(verify_password(&a, "pw"));
        assert!(!verify_password(&a, "pW"));
        assert!(check_password_hash("secret").is_err());
        assert!(check_password_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }
}
