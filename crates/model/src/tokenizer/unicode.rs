//! Codepoint classes for the pre-tokenizer, and GPT-2's byte ↔ character mapping.
//!
//! - [`CharInfo::of`] gives a codepoint's general-category class (from the generated
//!   [`unicode_table`](super::unicode_table), which is llama.cpp's own table, so word
//!   boundaries fall where llama.cpp puts them) plus whether it is white space
//!   (Unicode's `White_Space` property, the set llama.cpp uses for `\s`).
//! - [`lowercase`] and [`nfd_base`]: llama.cpp's one-codepoint lowercase and NFD maps
//!   (WordPiece normalizes with them).
//! - [`byte_to_char`] / [`char_to_byte`]: byte-level BPE vocabularies spell every byte
//!   as one printable character: the printable Latin-1 bytes stand for themselves,
//!   the other 68 bytes (controls, space, DEL, NBSP, soft hyphen, ...) become
//!   U+0100, U+0101, ... in byte order (so space is `Ġ`, U+0120, and newline `Ċ`).

use super::unicode_table::{CATEGORY_RUNS, LOWERCASE, NFD_RANGES};

/// Class bits, one per general-category class (`\p{N}`, `\p{L}`, ...), plus white space.
mod bits {
    pub const UNDEFINED: u16 = 0x01;
    pub const NUMBER: u16 = 0x02;
    pub const LETTER: u16 = 0x04;
    pub const PUNCTUATION: u16 = 0x20;
    pub const SYMBOL: u16 = 0x40;
    pub const CONTROL: u16 = 0x80;
    pub const WHITESPACE: u16 = 0x100;
}

/// What the pre-tokenizer needs to know about one codepoint.
///
/// [`CharInfo::NONE`] stands for "no codepoint" (a position past the end of the
/// text being split): it is in no class, not even "undefined".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CharInfo(u16);

impl CharInfo {
    /// No codepoint.
    pub const NONE: CharInfo = CharInfo(0);

    /// The class of `c`.
    pub fn of(c: char) -> CharInfo {
        let cp = c as u32;
        if cp < 128 {
            return CharInfo(ASCII[cp as usize]);
        }
        let run = CATEGORY_RUNS.partition_point(|&(start, _)| start <= cp).saturating_sub(1);
        let category = CATEGORY_RUNS.get(run).map_or(bits::UNDEFINED, |&(_, class)| u16::from(class));
        CharInfo(category | if is_white_space(cp) { bits::WHITESPACE } else { 0 })
    }

    /// `\p{L}`.
    pub fn is_letter(self) -> bool {
        self.0 & bits::LETTER != 0
    }

    /// `\p{N}`.
    pub fn is_number(self) -> bool {
        self.0 & bits::NUMBER != 0
    }

    /// `\p{P}`.
    pub fn is_punctuation(self) -> bool {
        self.0 & bits::PUNCTUATION != 0
    }

    /// `\p{S}`.
    pub fn is_symbol(self) -> bool {
        self.0 & bits::SYMBOL != 0
    }

    /// `\p{C}`.
    pub fn is_control(self) -> bool {
        self.0 & bits::CONTROL != 0
    }

    /// `\s`.
    pub fn is_whitespace(self) -> bool {
        self.0 & bits::WHITESPACE != 0
    }

    /// A real codepoint (anything but [`CharInfo::NONE`]).
    pub fn exists(self) -> bool {
        self.0 != 0
    }
}

/// The lowercase of `cp` as llama.cpp's table gives it (one codepoint; `cp` itself when none).
pub fn lowercase(cp: u32) -> u32 {
    LOWERCASE.binary_search_by_key(&cp, |&(from, _)| from).map_or(cp, |i| LOWERCASE[i].1)
}

/// The first codepoint of `cp`'s canonical decomposition (its base letter, the marks
/// dropped), as llama.cpp's NFD table gives it; `cp` itself when it does not decompose.
pub fn nfd_base(cp: u32) -> u32 {
    let i = NFD_RANGES.partition_point(|&(first, _, _)| first <= cp);
    match i.checked_sub(1).map(|i| NFD_RANGES[i]) {
        Some((first, last, base)) if first <= cp && cp <= last => base,
        _ => cp,
    }
}

/// Unicode's `White_Space` property.
const fn is_white_space(cp: u32) -> bool {
    matches!(cp, 0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000)
}

/// Classes of the ASCII codepoints, read from the run table at compile time.
static ASCII: [u16; 128] = ascii_classes();

const fn ascii_classes() -> [u16; 128] {
    let mut out = [0u16; 128];
    let mut cp = 0;
    let mut run = 0;
    while cp < 128 {
        while run + 1 < CATEGORY_RUNS.len() && CATEGORY_RUNS[run + 1].0 <= cp as u32 {
            run += 1;
        }
        out[cp] = CATEGORY_RUNS[run].1 as u16 | if is_white_space(cp as u32) { bits::WHITESPACE } else { 0 };
        cp += 1;
    }
    out
}

/// Whether byte `b` stands for itself in the byte-level alphabet.
const fn is_printable_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The 68 bytes that do not stand for themselves, in byte order; the n-th is spelt U+0100 + n.
static SHIFTED_BYTES: [u8; 68] = shifted_bytes();

const fn shifted_bytes() -> [u8; 68] {
    let mut out = [0u8; 68];
    let mut n = 0;
    let mut b = 0usize;
    while b < 256 {
        if !is_printable_byte(b as u8) {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
}

/// The codepoint that spells each byte in a byte-level vocabulary.
static BYTE_TO_CHAR: [u32; 256] = byte_chars();

const fn byte_chars() -> [u32; 256] {
    let mut out = [0u32; 256];
    let mut n = 0;
    let mut b = 0usize;
    while b < 256 {
        if is_printable_byte(b as u8) {
            out[b] = b as u32;
        } else {
            out[b] = 0x100 + n;
            n += 1;
        }
        b += 1;
    }
    out
}

/// The character that spells byte `b` in a byte-level vocabulary.
pub fn byte_to_char(b: u8) -> char {
    char::from_u32(BYTE_TO_CHAR[usize::from(b)]).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte that character `c` spells in a byte-level vocabulary, if any.
pub fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match u8::try_from(cp) {
        Ok(b) if is_printable_byte(b) => Some(b),
        _ => cp.checked_sub(0x100).and_then(|n| SHIFTED_BYTES.get(n as usize).copied()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_round_trips_and_matches_gpt2() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b), "byte {b}");
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), 'Ń'); // soft hyphen is the last shifted byte: U+0100 + 67
        assert_eq!(char_to_byte('中'), None);
        assert_eq!(char_to_byte(' '), None);
    }

    #[test]
    fn classes() {
        assert!(CharInfo::of('a').is_letter());
        assert!(CharInfo::of('中').is_letter());
        assert!(CharInfo::of('7').is_number());
        assert!(CharInfo::of('²').is_number());
        assert!(CharInfo::of('٣').is_number());
        assert!(CharInfo::of(' ').is_whitespace());
        assert!(CharInfo::of('\u{3000}').is_whitespace());
        assert!(!CharInfo::of('\u{1C}').is_whitespace());
        assert!(!CharInfo::of('!').is_letter());
        assert!(CharInfo::of('!').exists());
        assert!(CharInfo::of('\u{E0080}').exists()); // unassigned is still a class
        assert!(!CharInfo::of('\u{301}').is_letter()); // combining mark
        assert!(!CharInfo::NONE.exists());
    }
}
