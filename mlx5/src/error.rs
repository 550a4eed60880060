//! Typed errors (DESIGN.md rule 9): what the firmware said, decoded, and what went wrong in
//! words a person with the card can act on.

use joyride_vfio::VfioError;

/// Command completion status, the `status` byte of every command output (PRM §"Command
/// Reference", Table "Return Status Summary").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdStatus {
    /// 0x01: internal firmware error.
    InternalErr,
    /// 0x02: the opcode is not supported.
    BadOp,
    /// 0x03: a parameter is not supported or out of range.
    BadParam,
    /// 0x04: the system (HCA) is not in a state that allows the command.
    BadSysState,
    /// 0x05: a resource the command names does not exist.
    BadResource,
    /// 0x06: the resource is busy.
    ResourceBusy,
    /// 0x08: a limit would be exceeded.
    ExceedLim,
    /// 0x09: the resource is not in a state that allows the command.
    BadResState,
    /// 0x0a: an index is out of range.
    BadIndex,
    /// 0x0f: no resources.
    NoResources,
    /// 0x50: the input length is wrong.
    BadInputLen,
    /// 0x51: the output length is wrong.
    BadOutputLen,
    /// 0x10: the resource state does not allow the command (QP/SQ/RQ states).
    BadResourceState,
    /// 0x40: a size is not supported.
    BadSize,
    /// Any other value.
    Other(u8),
}

impl CmdStatus {
    /// Decodes a non-zero status byte.
    pub fn from_byte(b: u8) -> CmdStatus {
        match b {
            0x01 => CmdStatus::InternalErr,
            0x02 => CmdStatus::BadOp,
            0x03 => CmdStatus::BadParam,
            0x04 => CmdStatus::BadSysState,
            0x05 => CmdStatus::BadResource,
            0x06 => CmdStatus::ResourceBusy,
            0x08 => CmdStatus::ExceedLim,
            0x09 => CmdStatus::BadResState,
            0x0a => CmdStatus::BadIndex,
            0x0f => CmdStatus::NoResources,
            0x10 => CmdStatus::BadResourceState,
            0x40 => CmdStatus::BadSize,
            0x50 => CmdStatus::BadInputLen,
            0x51 => CmdStatus::BadOutputLen,
            o => CmdStatus::Other(o),
        }
    }

    /// The status byte.
    pub fn to_byte(self) -> u8 {
        match self {
            CmdStatus::InternalErr => 0x01,
            CmdStatus::BadOp => 0x02,
            CmdStatus::BadParam => 0x03,
            CmdStatus::BadSysState => 0x04,
            CmdStatus::BadResource => 0x05,
            CmdStatus::ResourceBusy => 0x06,
            CmdStatus::ExceedLim => 0x08,
            CmdStatus::BadResState => 0x09,
            CmdStatus::BadIndex => 0x0a,
            CmdStatus::NoResources => 0x0f,
            CmdStatus::BadResourceState => 0x10,
            CmdStatus::BadSize => 0x40,
            CmdStatus::BadInputLen => 0x50,
            CmdStatus::BadOutputLen => 0x51,
            CmdStatus::Other(o) => o,
        }
    }
}

/// Delivery failures the HCA reports in the command entry's `status` field, before the command
/// ran (PRM Table "Command Delivery Status").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// 0x1: signature error.
    Signature,
    /// 0x2: the token does not match the mailboxes'.
    Token,
    /// 0x3: a mailbox block number is out of sequence.
    BadBlockNumber,
    /// 0x4: the output mailbox pointer is bad.
    BadOutputPointer,
    /// 0x5: the input mailbox pointer is bad.
    BadInputPointer,
    /// 0x6: internal error.
    Internal,
    /// 0x7: input length error.
    InputLen,
    /// 0x8: output length error.
    OutputLen,
    /// 0x9: a reserved field is not zero.
    ReservedNotZero,
    /// 0x10: the command type is not supported.
    BadType,
    /// Any other value.
    Other(u8),
}

impl DeliveryStatus {
    /// Decodes a non-zero 7-bit delivery status.
    pub fn from_bits(b: u8) -> DeliveryStatus {
        match b {
            0x1 => DeliveryStatus::Signature,
            0x2 => DeliveryStatus::Token,
            0x3 => DeliveryStatus::BadBlockNumber,
            0x4 => DeliveryStatus::BadOutputPointer,
            0x5 => DeliveryStatus::BadInputPointer,
            0x6 => DeliveryStatus::Internal,
            0x7 => DeliveryStatus::InputLen,
            0x8 => DeliveryStatus::OutputLen,
            0x9 => DeliveryStatus::ReservedNotZero,
            0x10 => DeliveryStatus::BadType,
            o => DeliveryStatus::Other(o),
        }
    }

    /// The 7-bit value.
    pub fn to_bits(self) -> u8 {
        match self {
            DeliveryStatus::Signature => 0x1,
            DeliveryStatus::Token => 0x2,
            DeliveryStatus::BadBlockNumber => 0x3,
            DeliveryStatus::BadOutputPointer => 0x4,
            DeliveryStatus::BadInputPointer => 0x5,
            DeliveryStatus::Internal => 0x6,
            DeliveryStatus::InputLen => 0x7,
            DeliveryStatus::OutputLen => 0x8,
            DeliveryStatus::ReservedNotZero => 0x9,
            DeliveryStatus::BadType => 0x10,
            DeliveryStatus::Other(o) => o,
        }
    }
}

/// Why a firmware command failed. `Copy`: no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The HCA did not hand the entry back within the poll budget.
    #[error("{} (0x{opcode:x}): no completion within the poll budget", crate::prm::op::name(*opcode))]
    Timeout {
        /// The command.
        opcode: u16,
    },
    /// The HCA could not deliver the command.
    #[error("{} (0x{opcode:x}): delivery failed: {status:?}", crate::prm::op::name(*opcode))]
    Delivery {
        /// The command.
        opcode: u16,
        /// What the entry's status said.
        status: DeliveryStatus,
    },
    /// The firmware ran the command and refused it.
    #[error(
        "{} (0x{opcode:x}) failed: {status:?}, syndrome 0x{syndrome:08x}",
        crate::prm::op::name(*opcode)
    )]
    Failed {
        /// The command.
        opcode: u16,
        /// The output `status`.
        status: CmdStatus,
        /// The output `syndrome` (firmware-specific detail; quote it in bug reports).
        syndrome: u32,
    },
    /// The output is malformed (a value out of range, a mailbox with the wrong token).
    #[error("{} (0x{opcode:x}): malformed output: {what}", crate::prm::op::name(*opcode))]
    BadOutput {
        /// The command.
        opcode: u16,
        /// What was wrong.
        what: &'static str,
    },
    /// The input does not fit the command queue's mailboxes (a driver limit).
    #[error("{} (0x{opcode:x}): {len} bytes do not fit the mailbox area", crate::prm::op::name(*opcode))]
    TooLarge {
        /// The command.
        opcode: u16,
        /// Bytes needed.
        len: usize,
    },
}

/// Why the driver could not bring the HCA up (or tear it down).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mlx5Error {
    /// A VFIO operation failed.
    #[error(transparent)]
    Vfio(#[from] VfioError),
    /// Not a supported ConnectX device.
    #[error("PCI device {0:04x}:{1:04x} is not a ConnectX-4/5/6 physical function (15b3:1013/1015/1017/1019/101b/101d)")]
    NotConnectX(u16, u16),
    /// The firmware speaks another command interface revision.
    #[error("command interface revision {0} (this driver speaks 5)")]
    CmdIfRev(u16),
    /// The `initializing` bit did not clear.
    #[error("firmware still initializing after the poll budget (is the card in a good state?)")]
    InitTimeout,
    /// The command queue geometry is unusable.
    #[error("command queue: {0}")]
    CmdQueue(&'static str),
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The device lacks something the driver needs.
    #[error("unsupported device: {0}")]
    Unsupported(&'static str),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
