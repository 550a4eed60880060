//! Layouts and constants of the mlx5 device interface, from NVIDIA's public "Ethernet Adapters
//! Programmer's Reference Manual" (PRM). Section and table names are cited at each constant.
//!
//! The device is big-endian: every multi-byte field of a command, context, WQE or CQE is stored
//! most-significant byte first. Command layouts are built as byte vectors with [`put32`] /
//! [`put_bits`] and parsed with [`get32`] / [`get_bits`] after their length was checked, so a
//! parser never panics on device output.
//!
//! Field offsets are given as the PRM tables give them (byte offset of the 32-bit word, bit
//! range within it). They were written from the PRM as recalled and checked against the fake HCA
//! only: no ConnectX hardware has run this code yet (see the crate docs).

/// Writes the big-endian 32-bit word at byte `off` (`off + 4 <= b.len()`).
#[inline]
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian 64-bit field at byte `off`.
#[inline]
pub fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

/// Sets bits `hi..=lo` of the big-endian word at `off` to `v` (masked), keeping the rest.
#[inline]
pub fn put_bits(b: &mut [u8], off: usize, hi: u32, lo: u32, v: u32) {
    let mask = bit_mask(hi, lo);
    let w = (get32(b, off) & !mask) | ((v << lo) & mask);
    put32(b, off, w);
}

/// Reads the big-endian word at byte `off`; 0 when outside `b` (callers check lengths first,
/// this only keeps a parser from panicking on a short buffer).
#[inline]
pub fn get32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Reads a big-endian 64-bit field (0 when outside `b`).
#[inline]
pub fn get64(b: &[u8], off: usize) -> u64 {
    (u64::from(get32(b, off)) << 32) | u64::from(get32(b, off + 4))
}

/// Bits `hi..=lo` of the big-endian word at `off`.
#[inline]
pub fn get_bits(b: &[u8], off: usize, hi: u32, lo: u32) -> u32 {
    (get32(b, off) & bit_mask(hi, lo)) >> lo
}

#[inline]
const fn bit_mask(hi: u32, lo: u32) -> u32 {
    let width = hi - lo + 1;
    if width == 32 {
        u32::MAX
    } else {
        ((1u32 << width) - 1) << lo
    }
}

/// PCI vendor ID of Mellanox / NVIDIA networking.
pub const VENDOR_MELLANOX: u16 = 0x15b3;

/// PCI device IDs of the physical functions this driver is for: ConnectX-4 (0x1013),
/// ConnectX-4 Lx (0x1015), ConnectX-5 (0x1017), ConnectX-5 Ex (0x1019), ConnectX-6 (0x101b),
/// ConnectX-6 Dx (0x101d).
pub const DEVICE_IDS: [(u16, &str); 6] = [
    (0x1013, "ConnectX-4"),
    (0x1015, "ConnectX-4 Lx"),
    (0x1017, "ConnectX-5"),
    (0x1019, "ConnectX-5 Ex"),
    (0x101b, "ConnectX-6"),
    (0x101d, "ConnectX-6 Dx"),
];

/// PRM §"Initialization Segment" (Table "Initialization Segment"): offsets in BAR 0.
pub mod iseg {
    /// `fw_rev_minor` (31:16) | `fw_rev_major` (15:0).
    pub const FW_REV: u64 = 0x00;
    /// `cmd_interface_rev` (31:16) | `fw_rev_subminor` (15:0).
    pub const CMDIF_REV_FW_SUB: u64 = 0x04;
    /// `cmdq_phy_addr[63:32]`.
    pub const CMDQ_ADDR_HI: u64 = 0x10;
    /// `cmdq_phy_addr[31:12]` | `nic_interface` (9:8) | `log_cmdq_size` (7:4) |
    /// `log_cmdq_stride` (3:0).
    pub const CMDQ_ADDR_LO: u64 = 0x14;
    /// `command_doorbell_vector`: bit *i* rings command queue entry *i*.
    pub const CMD_DOORBELL: u64 = 0x18;
    /// `initializing` (31) | `nic_interface_supported` (26:24).
    pub const INITIALIZING: u64 = 0x1fc;
    /// Bit 31 of [`INITIALIZING`]: firmware is still initializing.
    pub const INITIALIZING_BIT: u32 = 1 << 31;
    /// The command interface revision this driver speaks (PRM: "cmd_interface_rev" = 5).
    pub const CMDIF_REV: u16 = 5;
    /// `nic_interface` values (bits 9:8 of [`CMDQ_ADDR_LO`]): 0 = full driver (the one we use).
    pub const NIC_IFC_FULL_DRIVER: u32 = 0;
}

/// PRM §"Command Queue" (Table "Command Queue Entry Layout"): one 64-byte entry.
pub mod cmd {
    /// Size of an entry; `log_cmdq_stride` must be 6.
    pub const ENTRY_SIZE: usize = 64;
    /// `type` (31:24): 0x7 = PCIe command interface.
    pub const TYPE: usize = 0x00;
    /// The only command type.
    pub const TYPE_PCIE: u32 = 0x7;
    /// `input_length` in bytes.
    pub const INPUT_LENGTH: usize = 0x04;
    /// `input_mailbox_pointer` (64 bits; low 10 bits zero).
    pub const INPUT_MAILBOX: usize = 0x08;
    /// `command_input_inline_data`: the first 16 bytes of the input.
    pub const INPUT_INLINE: usize = 0x10;
    /// `command_output_inline_data`: the first 16 bytes of the output.
    pub const OUTPUT_INLINE: usize = 0x20;
    /// `output_mailbox_pointer`.
    pub const OUTPUT_MAILBOX: usize = 0x30;
    /// `output_length` in bytes.
    pub const OUTPUT_LENGTH: usize = 0x38;
    /// `token` (31:24) | `signature` (23:16) | `status` (7:1) | `ownership` (0).
    pub const CTRL: usize = 0x3c;
    /// Inline bytes of input and of output.
    pub const INLINE_LEN: usize = 16;
    /// Ownership bit: set by software to pass the entry to the HCA, cleared by the HCA.
    pub const OWNER_HW: u32 = 1;

    /// PRM §"Command Mailbox" (Table "Mailbox Format"): 512 data bytes then control.
    pub const MAILBOX_DATA: usize = 512;
    /// `next_pointer` (64 bits) of the next block, 0 at the end of the chain.
    pub const MAILBOX_NEXT: usize = 0x230;
    /// `block_number`, counting from 0 along the chain.
    pub const MAILBOX_BLOCK_NUMBER: usize = 0x238;
    /// `token` (23:16) | `ctrl_signature` (15:8) | `signature` (7:0).
    pub const MAILBOX_CTRL: usize = 0x23c;
    /// Size of the block structure.
    pub const MAILBOX_SIZE: usize = 0x240;
    /// Blocks are placed on 1 KiB boundaries (the pointer's low 10 bits are reserved).
    pub const MAILBOX_STRIDE: usize = 1024;

    /// Delivery status in the entry's `status` field (PRM Table "Command Delivery Status").
    pub const DELIVERY_OK: u8 = 0x0;
}

// Layout pins: the entry and mailbox offsets must add up to the PRM sizes.
const _: () = assert!(cmd::CTRL + 4 == cmd::ENTRY_SIZE);
const _: () = assert!(cmd::MAILBOX_CTRL + 4 == cmd::MAILBOX_SIZE);
const _: () = assert!(cmd::MAILBOX_SIZE <= cmd::MAILBOX_STRIDE);
const _: () = assert!(cmd::INPUT_INLINE + cmd::INLINE_LEN == cmd::OUTPUT_INLINE);

/// Command opcodes (PRM §"Command Reference", Table "Command Opcodes").
#[allow(missing_docs)]
pub mod op {
    pub const QUERY_HCA_CAP: u16 = 0x100;
    pub const INIT_HCA: u16 = 0x102;
    pub const TEARDOWN_HCA: u16 = 0x103;
    pub const ENABLE_HCA: u16 = 0x104;
    pub const DISABLE_HCA: u16 = 0x105;
    pub const QUERY_PAGES: u16 = 0x107;
    pub const MANAGE_PAGES: u16 = 0x108;
    pub const SET_HCA_CAP: u16 = 0x109;
    pub const QUERY_ISSI: u16 = 0x10a;
    pub const SET_ISSI: u16 = 0x10b;
    pub const QUERY_SPECIAL_CONTEXTS: u16 = 0x203;
    pub const CREATE_EQ: u16 = 0x301;
    pub const DESTROY_EQ: u16 = 0x302;
    pub const CREATE_CQ: u16 = 0x400;
    pub const DESTROY_CQ: u16 = 0x401;
    pub const QUERY_VPORT_STATE: u16 = 0x750;
    pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
    pub const ALLOC_PD: u16 = 0x800;
    pub const DEALLOC_PD: u16 = 0x801;
    pub const ALLOC_UAR: u16 = 0x802;
    pub const DEALLOC_UAR: u16 = 0x803;
    pub const ALLOC_TRANSPORT_DOMAIN: u16 = 0x816;
    pub const DEALLOC_TRANSPORT_DOMAIN: u16 = 0x817;
    pub const CREATE_TIR: u16 = 0x900;
    pub const DESTROY_TIR: u16 = 0x902;
    pub const CREATE_SQ: u16 = 0x904;
    pub const MODIFY_SQ: u16 = 0x905;
    pub const DESTROY_SQ: u16 = 0x906;
    pub const CREATE_RQ: u16 = 0x908;
    pub const MODIFY_RQ: u16 = 0x909;
    pub const DESTROY_RQ: u16 = 0x90a;
    pub const CREATE_TIS: u16 = 0x912;
    pub const DESTROY_TIS: u16 = 0x914;
    pub const CREATE_RQT: u16 = 0x916;
    pub const DESTROY_RQT: u16 = 0x918;
    pub const SET_FLOW_TABLE_ROOT: u16 = 0x92f;
    pub const CREATE_FLOW_TABLE: u16 = 0x930;
    pub const DESTROY_FLOW_TABLE: u16 = 0x931;
    pub const CREATE_FLOW_GROUP: u16 = 0x933;
    pub const DESTROY_FLOW_GROUP: u16 = 0x934;
    pub const SET_FLOW_TABLE_ENTRY: u16 = 0x936;
    pub const DELETE_FLOW_TABLE_ENTRY: u16 = 0x938;

    /// A name for logs and error messages.
    pub fn name(op: u16) -> &'static str {
        match op {
            QUERY_HCA_CAP => "QUERY_HCA_CAP",
            INIT_HCA => "INIT_HCA",
            TEARDOWN_HCA => "TEARDOWN_HCA",
            ENABLE_HCA => "ENABLE_HCA",
            DISABLE_HCA => "DISABLE_HCA",
            QUERY_PAGES => "QUERY_PAGES",
            MANAGE_PAGES => "MANAGE_PAGES",
            SET_HCA_CAP => "SET_HCA_CAP",
            QUERY_ISSI => "QUERY_ISSI",
            SET_ISSI => "SET_ISSI",
            QUERY_SPECIAL_CONTEXTS => "QUERY_SPECIAL_CONTEXTS",
            CREATE_EQ => "CREATE_EQ",
            DESTROY_EQ => "DESTROY_EQ",
            CREATE_CQ => "CREATE_CQ",
            DESTROY_CQ => "DESTROY_CQ",
            QUERY_VPORT_STATE => "QUERY_VPORT_STATE",
            QUERY_NIC_VPORT_CONTEXT => "QUERY_NIC_VPORT_CONTEXT",
            ALLOC_PD => "ALLOC_PD",
            DEALLOC_PD => "DEALLOC_PD",
            ALLOC_UAR => "ALLOC_UAR",
            DEALLOC_UAR => "DEALLOC_UAR",
            ALLOC_TRANSPORT_DOMAIN => "ALLOC_TRANSPORT_DOMAIN",
            DEALLOC_TRANSPORT_DOMAIN => "DEALLOC_TRANSPORT_DOMAIN",
            CREATE_TIR => "CREATE_TIR",
            DESTROY_TIR => "DESTROY_TIR",
            CREATE_SQ => "CREATE_SQ",
            MODIFY_SQ => "MODIFY_SQ",
            DESTROY_SQ => "DESTROY_SQ",
            CREATE_RQ => "CREATE_RQ",
            MODIFY_RQ => "MODIFY_RQ",
            DESTROY_RQ => "DESTROY_RQ",
            CREATE_TIS => "CREATE_TIS",
            DESTROY_TIS => "DESTROY_TIS",
            CREATE_RQT => "CREATE_RQT",
            DESTROY_RQT => "DESTROY_RQT",
            SET_FLOW_TABLE_ROOT => "SET_FLOW_TABLE_ROOT",
            CREATE_FLOW_TABLE => "CREATE_FLOW_TABLE",
            DESTROY_FLOW_TABLE => "DESTROY_FLOW_TABLE",
            CREATE_FLOW_GROUP => "CREATE_FLOW_GROUP",
            DESTROY_FLOW_GROUP => "DESTROY_FLOW_GROUP",
            SET_FLOW_TABLE_ENTRY => "SET_FLOW_TABLE_ENTRY",
            DELETE_FLOW_TABLE_ENTRY => "DELETE_FLOW_TABLE_ENTRY",
            _ => "unknown",
        }
    }
}

/// Command output header (every command): `status` (byte 0), `syndrome` (word at 4).
pub mod out {
    /// Offset of the status byte.
    pub const STATUS: usize = 0x00;
    /// Offset of the syndrome word.
    pub const SYNDROME: usize = 0x04;
    /// Smallest output (status, syndrome, 8 bytes of command-specific data).
    pub const MIN_LEN: usize = 0x10;
}

/// Page size the HCA takes pages in (PRM §"Pages": MANAGE_PAGES gives 4 KiB pages).
pub const HCA_PAGE: usize = 4096;

/// Sizes of the work and completion queue entries (PRM §"Work Queues", §"Completion Queues").
pub mod wq {
    /// A send WQE basic block (WQEBB).
    pub const SEND_WQEBB: usize = 64;
    /// A receive WQE: one 16-byte scatter entry (`log_wq_stride` = 4).
    pub const RECV_WQE: usize = 16;
    /// A CQE (`cqe_sz` = 64 bytes).
    pub const CQE: usize = 64;
    /// An EQE.
    pub const EQE: usize = 64;
    /// Offset of the `pas` array after the WQ structure (Table "Work Queue Format", 0xc0 bytes).
    pub const WQ_PAS: usize = 0xc0;
}

const _: () = assert!(wq::SEND_WQEBB == 4 * 16 && wq::CQE == 64);
