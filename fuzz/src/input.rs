//! Reading structured values out of fuzz bytes. Every read succeeds: past the end it yields
//! zeros or empty slices, so that any byte string is a valid input and mutations never make an
//! input "unreadable", only different.

#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `len` bytes (fewer at the end).
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A `[u8 len][bytes]` field.
    pub fn short_bytes(&mut self) -> &'a [u8] {
        let len = self.u8() as usize;
        self.bytes(len)
    }

    /// A `[u16 len][bytes]` field.
    pub fn long_bytes(&mut self) -> &'a [u8] {
        let len = self.u16() as usize;
        self.bytes(len)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Writes inputs in the layout [`Input`] reads: used to build seeds.
#[derive(Debug, Default, Clone)]
pub struct InputBuilder {
    data: Vec<u8>,
}

impl InputBuilder {
    pub fn new() -> InputBuilder {
        InputBuilder::default()
    }

    pub fn u8(mut self, value: u8) -> InputBuilder {
        self.data.push(value);
        self
    }

    pub fn u16(mut self, value: u16) -> InputBuilder {
        self.data.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn u32(mut self, value: u32) -> InputBuilder {
        self.data.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn short_bytes(mut self, bytes: &[u8]) -> InputBuilder {
        let bytes = &bytes[..bytes.len().min(255)];
        self.data.push(bytes.len() as u8);
        self.data.extend_from_slice(bytes);
        self
    }

    pub fn long_bytes(mut self, bytes: &[u8]) -> InputBuilder {
        let bytes = &bytes[..bytes.len().min(65535)];
        self.data
            .extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        self.data.extend_from_slice(bytes);
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> InputBuilder {
        self.data.extend_from_slice(bytes);
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.data
    }
}

/// Splits a byte stream into chunks whose sizes come from `plan` (a seed byte): how a socket
/// might deliver it. Plan 0 delivers everything at once.
pub fn chunks(stream: &[u8], plan: u8) -> Vec<&[u8]> {
    if plan == 0 || stream.is_empty() {
        return vec![stream];
    }
    let mut rng = crate::rng::Rng::new(u64::from(plan));
    let max = 1 + (plan as usize % 64);
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let take = (1 + rng.below(max)).min(rest.len());
        let (head, tail) = rest.split_at(take);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_yield_zeros() {
        let mut input = Input::new(&[1, 2]);
        assert_eq!(input.u16(), 0x0102);
        assert_eq!(input.u32(), 0);
        assert!(input.short_bytes().is_empty());
    }

    #[test]
    fn builder_and_reader_agree() {
        let data = InputBuilder::new()
            .u8(7)
            .short_bytes(b"ab")
            .long_bytes(b"cde")
            .raw(b"z")
            .build();
        let mut input = Input::new(&data);
        assert_eq!(input.u8(), 7);
        assert_eq!(input.short_bytes(), b"ab");
        assert_eq!(input.long_bytes(), b"cde");
        assert_eq!(input.rest(), b"z");
    }

    #[test]
    fn chunks_cover_the_stream() {
        let stream: Vec<u8> = (0..=255).collect();
        for plan in 0..=255u8 {
            assert_eq!(chunks(&stream, plan).concat(), stream);
        }
    }
}
