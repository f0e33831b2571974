//! The libpcap format: its 24-byte file header (magic in both byte orders, microsecond or
//! nanosecond timestamps, the link type) and its records (16-byte header, captured bytes).
//!
//! Owns the checks of every record length against [`MAX_RECORD`] and the bytes at hand: a
//! record cut off or claiming an impossible length stops reading there.

use std::io::{self, Read};

use super::{Kind, MAX_RECORD, OpenError, Pending, Reader, u32_at};

impl<R: Read> Reader<R> {
    /// Read and check the pcap file header (the magic is already known to be pcap's).
    pub(super) fn open_pcap(&mut self) -> Result<(), OpenError> {
        let head = self.win.available();
        if head.len() < 24 {
            return Err(OpenError::BadHeader(format!(
                "the pcap file header is cut off after {} of 24 bytes",
                head.len()
            )));
        }
        let (be, nanos) = match head.get(..4) {
            Some([0xa1, 0xb2, 0xc3, 0xd4]) => (true, false),
            Some([0xd4, 0xc3, 0xb2, 0xa1]) => (false, false),
            Some([0xa1, 0xb2, 0x3c, 0x4d]) => (true, true),
            _ => (false, true),
        };
        let network = u32_at(head, 20, be).unwrap_or(0);
        // The top bits of the link-type field carry FCS information.
        let link_type = network & 0x03ff_ffff;
        self.kind = Kind::Pcap { be, nanos, link_type };
        self.link_types.push(link_type);
        self.win.consume(24);
        Ok(())
    }

    pub(super) fn next_pcap(
        &mut self,
        be: bool,
        nanos: bool,
        link_type: u32,
    ) -> io::Result<Option<Pending>> {
        if !self.win.fill(16)? {
            let left = self.win.available().len();
            if left > 0 {
                self.halt(format!("the file ends inside a record header ({left} of 16 bytes)"));
            }
            return Ok(None);
        }
        let h = self.win.available();
        let (Some(sec), Some(frac), Some(incl), Some(orig)) =
            (u32_at(h, 0, be), u32_at(h, 4, be), u32_at(h, 8, be), u32_at(h, 12, be))
        else {
            return Ok(None);
        };
        let incl = incl as usize;
        if incl > MAX_RECORD {
            self.halt(format!("a record claims an impossible length of {incl} bytes"));
            return Ok(None);
        }
        if !self.win.fill(16 + incl)? {
            let left = self.win.available().len().saturating_sub(16);
            self.halt(format!("the file ends inside a record ({left} of {incl} bytes)"));
            return Ok(None);
        }
        let frac_ns = if nanos { i64::from(frac) } else { i64::from(frac) * 1000 };
        let ts = i64::from(sec) * 1_000_000_000 + frac_ns;
        Ok(Some(Pending {
            len: 16 + incl,
            link_type,
            ts_ns: ts,
            orig_len: orig,
            data_at: 16,
            data_len: incl,
        }))
    }
}
