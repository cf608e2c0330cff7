// AVFoundation → Scanner: a sample-buffer delegate that hands each 32BGRA CVPixelBuffer to
// pushFrame (the one copy into Rust) and returns at once; busy frames are dropped in Rust.
import AVFoundation
import CoreLocation
import PlatewatchFFI

public final class CameraFeed: NSObject, AVCaptureVideoDataOutputSampleBufferDelegate {
    private let scanner: Scanner
    private let location: () -> CLLocation?
    public let session = AVCaptureSession()
    private let queue = DispatchQueue(label: "platewatch.camera")

    public init(scanner: Scanner, location: @escaping () -> CLLocation?) {
        self.scanner = scanner
        self.location = location
    }

    public func configure() throws {
        session.sessionPreset = .hd1280x720
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back) else { return }
        session.addInput(try AVCaptureDeviceInput(device: device))
        let output = AVCaptureVideoDataOutput()
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: queue)
        session.addOutput(output)
    }

    public func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer,
                              from connection: AVCaptureConnection) {
        guard let pixels = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        CVPixelBufferLockBaseAddress(pixels, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(pixels, .readOnly) }
        guard let base = CVPixelBufferGetBaseAddress(pixels) else { return }
        let rowStride = CVPixelBufferGetBytesPerRow(pixels)
        let height = CVPixelBufferGetHeight(pixels)
        let bytes = Data(bytes: base, count: rowStride * height)
        let gps = location().map {
            GpsPosition(lat: $0.coordinate.latitude, lon: $0.coordinate.longitude,
                        accuracyM: Float($0.horizontalAccuracy), atMs: Int64($0.timestamp.timeIntervalSince1970 * 1000))
        }
        let frame = CameraFrame(
            width: UInt32(CVPixelBufferGetWidth(pixels)), height: UInt32(height),
            rotationDegrees: 90, // portrait, back camera
            timestampMs: Int64(Date().timeIntervalSince1970 * 1000),
            pixels: .bgra(bytes: bytes, rowStride: UInt32(rowStride)), gps: gps)
        _ = try? scanner.pushFrame(frame: frame)
    }
}

/// Scanner events as an AsyncStream; ending the stream cancels the subscription.
public final class ScanEvents: ScanListener, @unchecked Sendable {
    private let continuation: AsyncStream<AlertEvent>.Continuation
    public init(_ continuation: AsyncStream<AlertEvent>.Continuation) { self.continuation = continuation }
    public func onFrame(frame: FrameResult) {}
    public func onRead(read: PlateReadEvent) {}
    public func onAlert(alert: AlertEvent) { continuation.yield(alert) }
    public func onSync(status: SyncStatus) {}
    public func onError(error: ScanError) {}
}

public extension Scanner {
    func alerts() -> AsyncStream<AlertEvent> {
        AsyncStream { continuation in
            if let handle = try? self.subscribe(listener: ScanEvents(continuation)) {
                continuation.onTermination = { _ in handle.cancel() }
            } else {
                continuation.finish()
            }
        }
    }
}
