/// A failure of the worker itself (configuration, socket, schema), with what to do about it.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable { case configuration, socket, schema, store }
        private let base: Base
        /// A bad option or URL.
        public static let configuration = Code(base: .configuration)
        /// The ZeroMQ socket could not be set up.
        public static let socket = Code(base: .socket)
        /// The database schema is not what the worker needs.
        public static let schema = Code(base: .schema)
        /// The store could not be opened.
        public static let store = Code(base: .store)
        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong and what to do.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
