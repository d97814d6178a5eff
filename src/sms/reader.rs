//! A bounds-checked cursor over PDU octets: every read either succeeds or returns
//! [`SmsError::Truncated`] naming the field and its offset.

use super::SmsError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, SmsError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], SmsError> {
        let rest = &self.buf[self.pos..];
        let taken = rest
            .get(..n)
            .ok_or_else(|| SmsError::truncated(field, self.pos, n, rest.len()))?;
        self.pos += n;
        Ok(taken)
    }
}
