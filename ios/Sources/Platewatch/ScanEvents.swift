// Scanner events as AsyncStreams (the Swift twin of the Kotlin layer's Flow): iterating subscribes, ending the iteration cancels the subscription.
import PlatewatchFFI

/// Everything a Scanner reports, as one type for a `switch`.
public enum ScanEvent: Sendable {
    case frame(FrameResult)
    case read(PlateReadEvent)
    case alert(AlertEvent)
    case sync(SyncStatus)
    case error(ScanError)
}

/// The foreign listener the scanner calls on its delivery thread; it only yields.
final class StreamListener: ScanListener, @unchecked Sendable {
    private let continuation: AsyncStream<ScanEvent>.Continuation

    init(_ continuation: AsyncStream<ScanEvent>.Continuation) {
        self.continuation = continuation
    }

    func onFrame(frame: FrameResult) { continuation.yield(.frame(frame)) }
    func onRead(read: PlateReadEvent) { continuation.yield(.read(read)) }
    func onAlert(alert: AlertEvent) { continuation.yield(.alert(alert)) }
    func onSync(status: SyncStatus) { continuation.yield(.sync(status)) }
    func onError(error: ScanError) { continuation.yield(.error(error)) }
}

public extension Scanner {
    /// The scanner's events while the stream is iterated. A slow consumer loses the oldest
    /// buffered events past 256 (the scanner itself drops frame results first).
    func events() -> AsyncStream<ScanEvent> {
        AsyncStream(bufferingPolicy: .bufferingNewest(256)) { continuation in
            do {
                let handle = try self.subscribe(listener: StreamListener(continuation))
                continuation.onTermination = { _ in handle.cancel() }
            } catch {
                continuation.finish()
            }
        }
    }

    /// Hot list alerts as they happen.
    func alerts() -> AsyncStream<AlertEvent> {
        let events = self.events()
        return AsyncStream { continuation in
            let task = Task {
                for await event in events {
                    if case let .alert(alert) = event { continuation.yield(alert) }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
