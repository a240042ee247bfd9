//! Two small text helpers several modules share: lowercase hex, and cutting
//! a string to a byte limit without splitting a character.

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_and_clip() {
        assert_eq!(super::hex(&[0, 15, 255]), "000fff");
        assert_eq!(super::clip("héllo", 2), "h");
        assert_eq!(super::clip("héllo", 3), "hé");
        assert_eq!(super::clip("hi", 10), "hi");
    }
}
