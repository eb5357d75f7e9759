import Hummingbird
import NIOCore

/// The request context of ScopeGate's listeners: Hummingbird's core context plus the peer address.
public struct GateRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The IP address of the TCP peer, as ScopeGate saw it.
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
