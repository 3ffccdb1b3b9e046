// Every raw pointer and every libzmq call of the ZeroMQ module lives in this file, in the shape of
// swift-nio's `Posix`/`syscall` helpers: one retry loop (`attempt`) that retries EINTR and reads
// `zmq_errno()`, one checker (`check`) that turns a failure into a `ZeroMQError` naming the function
// (EAGAIN becomes `.wouldBlock` for ZMQ_DONTWAIT calls and `.timedOut` for blocking ones), and small typed
// wrappers that the Swift types (`Context`, `Socket`, `Poller`, `ZeroMQ`) call. Other files import CZeroMQ
// only for its constants (ZMQ_LINGER, ZMQ_DONTWAIT, ...).
//
// Note: a blocking call interrupted by a signal (EINTR) is restarted, and with it its RCVTIMEO/SNDTIMEO.

internal import CZeroMQ

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A non-owning reference to a libzmq context; `Context` owns and frees it.
///
/// libzmq contexts are thread-safe, so the handle may cross threads.
struct ContextHandle: @unchecked Sendable {
    fileprivate let raw: UnsafeMutableRawPointer
}

/// A non-owning reference to a libzmq socket and its receive message; `Socket` owns and closes both.
/// Not thread-safe, not Sendable.
struct SocketHandle {
    fileprivate let raw: UnsafeMutableRawPointer
    /// One `zmq_msg_t` reused by every receive on this socket (as a C loop inits once): no per-call init/close.
    fileprivate let message: UnsafeMutablePointer<zmq_msg_t>
}

/// What EAGAIN means for the call that returned it.
enum EAGAINMeaning {
    /// The call was made with `ZMQ_DONTWAIT`.
    case wouldBlock
    /// The call was blocking, so EAGAIN means its RCVTIMEO/SNDTIMEO elapsed.
    case timedOut
}

/// The raw result of one libzmq call after EINTR retries.
struct CallResult {
    let rc: Int32
    let errno: Int32
}

/// Raw option values as libzmq stores them.
enum RawOptionValue {
    case int32(Int32)
    case int64(Int64)
    case bytes([UInt8])
}

/// How to read an option from libzmq.
enum RawOptionKind: Sendable {
    case int32
    case int64
    /// A byte/string option; `capacity` is the buffer size to offer `zmq_getsockopt`.
    case bytes(capacity: Int)
}

/// libzmq's C API, wrapped. Nothing outside this file touches a pointer or calls libzmq.
enum CZMQ {
    // MARK: - The call helper

    /// Runs `body` until it does not fail with EINTR; returns its return code and, on failure, `zmq_errno()`.
    @inline(__always)
    static func attempt(_ body: () -> Int32) -> CallResult {
        while true {
            let rc = body()
            if _fastPath(rc >= 0) {
                return CallResult(rc: rc, errno: 0)
            }
            let code = zmq_errno()
            if code != EINTR {
                return CallResult(rc: rc, errno: code)
            }
        }
    }

    /// Returns `result.rc` or throws a `ZeroMQError` naming `function` (and `detail`, built only on failure).
    @inline(__always)
    static func check(
        _ result: CallResult,
        _ function: StaticString,
        _ detail: @autoclosure () -> String? = nil,
        eagain: EAGAINMeaning = .wouldBlock
    ) throws(ZeroMQError) -> Int32 {
        if _fastPath(result.rc >= 0) {
            return result.rc
        }
        throw self.error(errno: result.errno, function, detail(), eagain: eagain)
    }

    /// `check(attempt(body))`: the one call helper for libzmq functions returning an int.
    @inline(__always)
    @discardableResult
    static func call(
        _ function: StaticString,
        _ detail: @autoclosure () -> String? = nil,
        eagain: EAGAINMeaning = .wouldBlock,
        _ body: () -> Int32
    ) throws(ZeroMQError) -> Int32 {
        try self.check(self.attempt(body), function, detail(), eagain: eagain)
    }

    /// Builds the error for `errno` raised by `function`.
    static func error(
        errno: Int32,
        _ function: StaticString,
        _ detail: String? = nil,
        eagain: EAGAINMeaning = .wouldBlock
    ) -> ZeroMQError {
        let operation = detail.map { "\(function)(\($0))" } ?? "\(function)"
        return ZeroMQError(code: self.code(for: errno, eagain: eagain), errno: errno, operation: operation)
    }

    /// The error thrown when a closed `Socket` is used.
    static func socketClosedError(_ function: StaticString) -> ZeroMQError {
        ZeroMQError(code: .socketClosed, errno: ENOTSOCK, operation: "\(function)")
    }

    /// An EINVAL error raised by the wrapper's own argument checks.
    static func invalidArgument(_ function: StaticString, _ detail: String) -> ZeroMQError {
        self.error(errno: EINVAL, function, detail)
    }

    /// The ETERM error for a context that was already terminated.
    static func contextTerminatedError(_ function: StaticString) -> ZeroMQError {
        self.error(errno: ETERM, function)
    }

    /// Maps an errno to a `ZeroMQError.Code`.
    static func code(for errno: Int32, eagain: EAGAINMeaning) -> ZeroMQError.Code {
        switch errno {
        case EAGAIN:
            switch eagain {
            case .wouldBlock: .wouldBlock
            case .timedOut: .timedOut
            }
        case ETIMEDOUT: .timedOut
        case ETERM: .contextTerminated
        case EFSM: .invalidState
        case EHOSTUNREACH: .hostUnreachable
        case ENOTSOCK: .socketClosed
        case EINVAL: .invalidArgument
        case EPROTONOSUPPORT: .protocolNotSupported
        case EADDRINUSE: .addressInUse
        case EADDRNOTAVAIL: .addressNotAvailable
        case ENOTSUP: .notSupported
        default: .other
        }
    }

    /// `zmq_strerror`.
    static func errorMessage(_ errno: Int32) -> String {
        guard let text = zmq_strerror(errno) else {
            return "Unknown error \(errno)"
        }
        return String(cString: text)
    }

    @inline(__always)
    static func eagainMeaning(_ flags: Int32) -> EAGAINMeaning {
        flags & ZMQ_DONTWAIT != 0 ? .wouldBlock : .timedOut
    }

    // MARK: - Library

    /// `zmq_version`.
    static func version() -> (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }

    /// `zmq_has`.
    static func has(_ capability: String) -> Bool {
        capability.withCString { zmq_has($0) } == 1
    }

    /// `zmq_curve_keypair`: two 40-character Z85 strings.
    static func curveKeyPair() throws(ZeroMQError) -> (publicKey: String, secretKey: String) {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        try self.call("zmq_curve_keypair") { zmq_curve_keypair(&publicKey, &secretKey) }
        return (self.string(fromZ85Buffer: publicKey), self.string(fromZ85Buffer: secretKey))
    }

    /// `zmq_curve_public`: the Z85 public key for a Z85 secret key.
    static func curvePublicKey(forSecretKey secretKey: String) throws(ZeroMQError) -> String {
        var publicKey = [CChar](repeating: 0, count: 41)
        let result = secretKey.withCString { secret in
            self.attempt { zmq_curve_public(&publicKey, secret) }
        }
        _ = try self.check(result, "zmq_curve_public")
        return self.string(fromZ85Buffer: publicKey)
    }

    /// `zmq_z85_encode`; `bytes.count` must be a multiple of 4.
    static func z85Encode(_ bytes: [UInt8]) throws(ZeroMQError) -> String {
        guard bytes.count % 4 == 0 else {
            throw self.error(errno: EINVAL, "zmq_z85_encode", "\(bytes.count) bytes, not a multiple of 4")
        }
        var output = [CChar](repeating: 0, count: bytes.count / 4 * 5 + 1)
        let encoded = bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                zmq_z85_encode(out.baseAddress, input.baseAddress, input.count) != nil
            }
        }
        guard encoded || bytes.isEmpty else {
            throw self.error(errno: EINVAL, "zmq_z85_encode")
        }
        return self.string(fromZ85Buffer: output)
    }

    /// `zmq_z85_decode`; the string's length must be a multiple of 5.
    static func z85Decode(_ string: String) throws(ZeroMQError) -> [UInt8] {
        let length = string.utf8.count
        guard length % 5 == 0 else {
            throw self.error(errno: EINVAL, "zmq_z85_decode", "\(length) characters, not a multiple of 5")
        }
        if length == 0 {
            return []
        }
        var output = [UInt8](repeating: 0, count: length / 5 * 4)
        let decoded = string.withCString { input in
            output.withUnsafeMutableBufferPointer { out in
                zmq_z85_decode(out.baseAddress, input) != nil
            }
        }
        guard decoded else {
            throw self.error(errno: EINVAL, "zmq_z85_decode", "invalid Z85 text")
        }
        return output
    }

    private static func string(fromZ85Buffer buffer: [CChar]) -> String {
        let end = buffer.firstIndex(of: 0) ?? buffer.endIndex
        return String(decoding: buffer[..<end].lazy.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - Context

    /// `zmq_ctx_new` followed by `zmq_ctx_set(ZMQ_IO_THREADS)`.
    static func contextNew(ioThreads: Int) throws(ZeroMQError) -> ContextHandle {
        guard let threads = Int32(exactly: ioThreads), threads >= 0 else {
            throw self.error(errno: EINVAL, "zmq_ctx_set", "ZMQ_IO_THREADS, \(ioThreads)")
        }
        guard let raw = zmq_ctx_new() else {
            throw self.error(errno: zmq_errno(), "zmq_ctx_new")
        }
        do {
            try self.call("zmq_ctx_set", "ZMQ_IO_THREADS") { zmq_ctx_set(raw, ZMQ_IO_THREADS, threads) }
        } catch {
            _ = self.attempt { zmq_ctx_term(raw) }
            throw error
        }
        return ContextHandle(raw: raw)
    }

    /// `zmq_ctx_shutdown`: interrupts blocking calls with ETERM; never blocks.
    static func contextShutdown(_ context: ContextHandle) {
        _ = self.attempt { zmq_ctx_shutdown(context.raw) }
    }

    /// `zmq_ctx_term`: blocks until every socket of the context is closed (and lingered), then frees it.
    static func contextTerminate(_ context: ContextHandle) {
        _ = self.attempt { zmq_ctx_term(context.raw) }
    }

    // MARK: - Socket lifecycle

    /// `zmq_socket`.
    static func socketOpen(_ context: ContextHandle, type: Int32) throws(ZeroMQError) -> SocketHandle {
        guard let raw = zmq_socket(context.raw, type) else {
            throw self.error(errno: zmq_errno(), "zmq_socket")
        }
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(message)
        return SocketHandle(raw: raw, message: message)
    }

    /// `zmq_close`: never blocks; pending messages linger in the background per ZMQ_LINGER.
    static func socketClose(_ socket: SocketHandle) {
        _ = self.attempt { zmq_close(socket.raw) }
        zmq_msg_close(socket.message)
        socket.message.deallocate()
    }

    /// `zmq_bind`.
    static func bind(_ socket: SocketHandle, _ endpoint: String) throws(ZeroMQError) {
        let result = endpoint.withCString { address in self.attempt { zmq_bind(socket.raw, address) } }
        _ = try self.check(result, "zmq_bind", endpoint)
    }

    /// `zmq_connect`.
    static func connect(_ socket: SocketHandle, _ endpoint: String) throws(ZeroMQError) {
        let result = endpoint.withCString { address in self.attempt { zmq_connect(socket.raw, address) } }
        _ = try self.check(result, "zmq_connect", endpoint)
    }

    /// `zmq_unbind`.
    static func unbind(_ socket: SocketHandle, _ endpoint: String) throws(ZeroMQError) {
        let result = endpoint.withCString { address in self.attempt { zmq_unbind(socket.raw, address) } }
        _ = try self.check(result, "zmq_unbind", endpoint)
    }

    /// `zmq_disconnect`.
    static func disconnect(_ socket: SocketHandle, _ endpoint: String) throws(ZeroMQError) {
        let result = endpoint.withCString { address in self.attempt { zmq_disconnect(socket.raw, address) } }
        _ = try self.check(result, "zmq_disconnect", endpoint)
    }

    // MARK: - Socket options

    /// `zmq_setsockopt` for any raw value.
    static func setOption(
        _ socket: SocketHandle,
        _ option: Int32,
        _ value: RawOptionValue,
        name: @autoclosure () -> String
    ) throws(ZeroMQError) {
        let result: CallResult
        switch value {
        case .int32(var int):
            result = self.attempt { zmq_setsockopt(socket.raw, option, &int, MemoryLayout<Int32>.size) }
        case .int64(var int):
            result = self.attempt { zmq_setsockopt(socket.raw, option, &int, MemoryLayout<Int64>.size) }
        case .bytes(let bytes):
            result = bytes.withUnsafeBytes { buffer in
                self.attempt { zmq_setsockopt(socket.raw, option, buffer.baseAddress, buffer.count) }
            }
        }
        _ = try self.check(result, "zmq_setsockopt", name())
    }

    /// `zmq_getsockopt` for any raw kind.
    static func getOption(
        _ socket: SocketHandle,
        _ option: Int32,
        _ kind: RawOptionKind,
        name: @autoclosure () -> String
    ) throws(ZeroMQError) -> RawOptionValue {
        switch kind {
        case .int32:
            return .int32(try self.getInt32(socket, option, name: name()))
        case .int64:
            var value: Int64 = 0
            var size = MemoryLayout<Int64>.size
            try self.call("zmq_getsockopt", name()) { zmq_getsockopt(socket.raw, option, &value, &size) }
            return .int64(value)
        case .bytes(let capacity):
            var buffer = [UInt8](repeating: 0, count: capacity)
            var size = capacity
            let result = buffer.withUnsafeMutableBytes { bytes in
                self.attempt { zmq_getsockopt(socket.raw, option, bytes.baseAddress, &size) }
            }
            _ = try self.check(result, "zmq_getsockopt", name())
            buffer.removeSubrange(min(size, capacity)...)
            return .bytes(buffer)
        }
    }

    /// `zmq_getsockopt` for an int option (used directly by hot getters such as ZMQ_RCVMORE).
    @inline(__always)
    static func getInt32(
        _ socket: SocketHandle,
        _ option: Int32,
        name: @autoclosure () -> String
    ) throws(ZeroMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try self.call("zmq_getsockopt", name()) { zmq_getsockopt(socket.raw, option, &value, &size) }
        return value
    }

    // MARK: - Sending

    /// `zmq_send` of an array's bytes.
    @inline(__always)
    static func send(_ socket: SocketHandle, _ bytes: [UInt8], flags: Int32) throws(ZeroMQError) {
        let result = bytes.withUnsafeBytes { buffer in
            self.attempt { zmq_send(socket.raw, buffer.baseAddress, buffer.count, flags) }
        }
        _ = try self.check(result, "zmq_send", eagain: self.eagainMeaning(flags))
    }

    /// `zmq_send` of any contiguous bytes (Data, slices, ...).
    @inline(__always)
    static func send(_ socket: SocketHandle, contiguous bytes: some ContiguousBytes, flags: Int32) throws(ZeroMQError) {
        let result = bytes.withUnsafeBytes { buffer in
            self.attempt { zmq_send(socket.raw, buffer.baseAddress, buffer.count, flags) }
        }
        _ = try self.check(result, "zmq_send", eagain: self.eagainMeaning(flags))
    }

    /// `zmq_send` of a string's UTF-8 bytes.
    static func send(_ socket: SocketHandle, utf8 text: String, flags: Int32) throws(ZeroMQError) {
        var text = text
        let result = text.withUTF8 { buffer in
            self.attempt { zmq_send(socket.raw, buffer.baseAddress, buffer.count, flags) }
        }
        _ = try self.check(result, "zmq_send", eagain: self.eagainMeaning(flags))
    }

    /// Sends every frame, with ZMQ_SNDMORE on all but the last.
    static func sendMultipart(_ socket: SocketHandle, _ frames: [[UInt8]], flags: Int32) throws(ZeroMQError) {
        guard !frames.isEmpty else {
            throw self.error(errno: EINVAL, "zmq_send", "a multipart message needs at least one frame")
        }
        let last = frames.count - 1
        try self.sendMultipart(socket, frames[..<last], last: frames[last], flags: flags)
    }

    /// Sends `head` with ZMQ_SNDMORE on each frame, then `last`.
    static func sendMultipart(
        _ socket: SocketHandle, _ head: ArraySlice<[UInt8]>, last: [UInt8], flags: Int32
    ) throws(ZeroMQError) {
        for frame in head {
            try self.send(socket, frame, flags: flags | ZMQ_SNDMORE)
        }
        try self.send(socket, last, flags: flags)
    }

    /// Sends every frame of any collection of contiguous bytes, with ZMQ_SNDMORE on all but the last.
    static func sendMultipart<Frames: Collection>(
        _ socket: SocketHandle,
        contiguous frames: Frames,
        flags: Int32
    ) throws(ZeroMQError) where Frames.Element: ContiguousBytes {
        guard !frames.isEmpty else {
            throw self.error(errno: EINVAL, "zmq_send", "a multipart message needs at least one frame")
        }
        var remaining = frames.count
        for frame in frames {
            remaining -= 1
            try self.send(socket, contiguous: frame, flags: remaining > 0 ? flags | ZMQ_SNDMORE : flags)
        }
    }

    // MARK: - Receiving

    /// Frames larger than this are released right after copying instead of staying in the socket's message.
    private static let retainedFrameLimit = 256

    /// Receives one frame into the socket's reusable `zmq_msg_t` and hands its bytes and "more" flag to `body`.
    ///
    /// `zmq_msg_recv` releases the previous content itself, so small frames cost no init/close per call;
    /// large frames are released at once so the socket never pins a big buffer between calls.
    @inline(__always)
    private static func withReceivedFrame<Result>(
        _ socket: SocketHandle,
        flags: Int32,
        readMore: Bool = true,
        _ body: (UnsafeRawBufferPointer, _ more: Bool) -> Result
    ) throws(ZeroMQError) -> Result {
        let message = socket.message
        _ = try self.call("zmq_msg_recv", eagain: self.eagainMeaning(flags)) {
            zmq_msg_recv(message, socket.raw, flags)
        }
        let size = zmq_msg_size(message)
        let bytes = UnsafeRawBufferPointer(start: size == 0 ? nil : zmq_msg_data(message), count: size)
        let result = body(bytes, readMore && zmq_msg_more(message) != 0)
        if size > self.retainedFrameLimit {
            zmq_msg_close(message)
            zmq_msg_init(message)
        }
        return result
    }

    /// `zmq_msg_recv`, copying the frame into a new array once, with the "more" flag.
    @inline(__always)
    static func receiveFrame(_ socket: SocketHandle, flags: Int32) throws(ZeroMQError) -> (bytes: [UInt8], more: Bool) {
        try self.withReceivedFrame(socket, flags: flags) { bytes, more in
            (self.makeArray(bytes), more)
        }
    }

    /// `zmq_msg_recv`, replacing `buffer`'s contents (reusing its storage when unique); returns the "more" flag
    /// (always false when `readMore` is false).
    @inline(__always)
    static func receive(
        _ socket: SocketHandle,
        into buffer: inout [UInt8],
        flags: Int32,
        readMore: Bool = true
    ) throws(ZeroMQError) -> Bool {
        try self.withReceivedFrame(socket, flags: flags, readMore: readMore) { bytes, more in
            let frame = bytes.assumingMemoryBound(to: UInt8.self)
            if buffer.count == frame.count {
                // Same size as last time (the common case): overwrite in place.
                buffer.withUnsafeMutableBufferPointer { target in
                    _ = target.update(fromContentsOf: frame)
                }
            } else {
                buffer.replaceSubrange(buffer.startIndex..<buffer.endIndex, with: frame)
            }
            return more
        }
    }

    /// `zmq_msg_recv` in a loop until the last frame of one message.
    static func receiveMultipart(_ socket: SocketHandle, flags: Int32) throws(ZeroMQError) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var more = true
        while more {
            let frame = try self.receiveFrame(socket, flags: flags)
            frames.append(frame.bytes)
            more = frame.more
        }
        return frames
    }

    /// `zmq_msg_recv` in a loop, reusing `frames` and the capacity of its arrays.
    static func receiveMultipart(_ socket: SocketHandle, into frames: inout [[UInt8]], flags: Int32) throws(ZeroMQError) {
        var count = 0
        var more = true
        while more {
            if count < frames.count {
                more = try self.receive(socket, into: &frames[count], flags: flags)
            } else {
                let frame = try self.receiveFrame(socket, flags: flags)
                frames.append(frame.bytes)
                more = frame.more
            }
            count += 1
        }
        if frames.count > count {
            frames.removeSubrange(count...)
        }
    }

    @inline(__always)
    private static func makeArray(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        // Array(UnsafeBufferPointer) takes the stdlib's memcpy fast path and measured ~40% cheaper for small
        // frames than init(unsafeUninitializedCapacity:).
        bytes.count == 0 ? [] : Array(bytes.assumingMemoryBound(to: UInt8.self))
    }

    // MARK: - Polling

    /// A reusable `zmq_pollitem_t` array.
    struct PollItems {
        private var items: [zmq_pollitem_t] = []

        var count: Int { self.items.count }

        /// Adds a socket item (its pointer is filled in by `setSocket` before each poll).
        mutating func appendSocket(events: Int16) {
            self.items.append(zmq_pollitem_t(socket: nil, fd: 0, events: events, revents: 0))
        }

        /// Adds a plain file descriptor item.
        mutating func appendFileDescriptor(_ fd: Int32, events: Int16) {
            self.items.append(zmq_pollitem_t(socket: nil, fd: fd, events: events, revents: 0))
        }

        mutating func setSocket(at index: Int, _ socket: SocketHandle) {
            self.items[index].socket = socket.raw
        }

        mutating func setEvents(at index: Int, _ events: Int16) {
            self.items[index].events = events
        }

        func returnedEvents(at index: Int) -> Int16 {
            self.items[index].revents
        }

        mutating func removeAll() {
            self.items.removeAll(keepingCapacity: true)
        }

        /// `zmq_poll`; `timeoutMilliseconds` -1 waits forever. Returns the number of ready items.
        mutating func poll(timeoutMilliseconds: Int) throws(ZeroMQError) -> Int {
            let count = Int32(self.items.count)
            let result = self.items.withUnsafeMutableBufferPointer { buffer in
                CZMQ.attempt { zmq_poll(buffer.baseAddress, count, timeoutMilliseconds) }
            }
            return Int(try CZMQ.check(result, "zmq_poll"))
        }
    }
}
