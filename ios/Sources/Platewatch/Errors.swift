// Readable text for the FFI's errors (the Rust message: kind and reason, never plate text).
import PlatewatchFFI

public extension PlatewatchError {
    /// The message from Rust, e.g. "invalid input: start a session before pushing frames".
    var summary: String {
        switch self {
        case let .InvalidInput(message), let .Storage(message), let .Network(message),
             let .Model(message), let .Unauthorized(message), let .Internal(message):
            return message
        }
    }
}
