// AVFoundation → Scanner: each CVPixelBuffer goes to pushFrameBuffers in place (locked, read by address, never copied in Swift).
import AVFoundation
import CoreVideo
import PlatewatchFFI

/// Describes a `CVPixelBuffer` as a `BufferFrame` whose planes point into the buffer's memory.
public enum PixelBufferFrames {
    /// The frame for a buffer the caller has locked with `CVPixelBufferLockBaseAddress(_, .readOnly)`
    /// and keeps locked until `pushFrameBuffers` returns. 32BGRA and bi-planar 4:2:0 (full or
    /// video range) are supported; nil for anything else.
    public static func frame(
        _ pb: CVPixelBuffer,
        rotationDegrees: Int32,
        timestampMs: Int64,
        gps: GpsPosition?
    ) -> BufferFrame? {
        let width = CVPixelBufferGetWidth(pb)
        let height = CVPixelBufferGetHeight(pb)
        let pixels: BufferPixels
        switch CVPixelBufferGetPixelFormatType(pb) {
        case kCVPixelFormatType_32BGRA:
            guard let base = CVPixelBufferGetBaseAddress(pb) else { return nil }
            let stride = CVPixelBufferGetBytesPerRow(pb)
            pixels = .bgra(plane: BufferPlane(
                address: address(base),
                len: UInt64(stride * height),
                rowStride: UInt32(stride),
                pixelStride: 4
            ))
        case kCVPixelFormatType_420YpCbCr8BiPlanarFullRange, kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange:
            guard CVPixelBufferGetPlaneCount(pb) >= 2,
                  let luma = CVPixelBufferGetBaseAddressOfPlane(pb, 0),
                  let chroma = CVPixelBufferGetBaseAddressOfPlane(pb, 1)
            else { return nil }
            let yStride = CVPixelBufferGetBytesPerRowOfPlane(pb, 0)
            let yLen = UInt64(yStride * CVPixelBufferGetHeightOfPlane(pb, 0))
            let cStride = CVPixelBufferGetBytesPerRowOfPlane(pb, 1)
            let cLen = UInt64(cStride * CVPixelBufferGetHeightOfPlane(pb, 1))
            guard cLen > 1 else { return nil }
            // One interleaved CbCr plane: U at its start, V one byte later, both pixel stride 2.
            let cb = address(chroma)
            pixels = .yuv420(
                y: BufferPlane(address: address(luma), len: yLen, rowStride: UInt32(yStride), pixelStride: 1),
                u: BufferPlane(address: cb, len: cLen, rowStride: UInt32(cStride), pixelStride: 2),
                v: BufferPlane(address: cb + 1, len: cLen - 1, rowStride: UInt32(cStride), pixelStride: 2)
            )
        default:
            return nil
        }
        return BufferFrame(
            width: UInt32(width),
            height: UInt32(height),
            rotationDegrees: rotationDegrees,
            timestampMs: timestampMs,
            pixels: pixels,
            gps: gps
        )
    }

    private static func address(_ pointer: UnsafeMutableRawPointer) -> UInt64 {
        UInt64(UInt(bitPattern: pointer))
    }
}

public enum CameraFeedError: Error {
    case noCamera
    case cannotAddInput
    case cannotAddOutput
}

/// The back camera at 1280x720 delivering to the scanner on its own queue. Late frames are
/// discarded by AVFoundation, busy ones dropped (and counted) inside the scanner.
public final class CameraFeed: NSObject, AVCaptureVideoDataOutputSampleBufferDelegate, @unchecked Sendable {
    public let session = AVCaptureSession()
    private let scanner: Scanner
    private let pixelFormat: OSType
    private let location: @Sendable () -> GpsPosition?
    private let onError: @Sendable (Error) -> Void
    private let queue = DispatchQueue(label: "app.platewatch.camera")
    private let lock = NSLock()
    private var rotation: Int32 = 90

    /// `pixelFormat`: `kCVPixelFormatType_32BGRA` (default) or a bi-planar 4:2:0 format.
    public init(
        scanner: Scanner,
        pixelFormat: OSType = kCVPixelFormatType_32BGRA,
        location: @escaping @Sendable () -> GpsPosition?,
        onError: @escaping @Sendable (Error) -> Void
    ) {
        self.scanner = scanner
        self.pixelFormat = pixelFormat
        self.location = location
        self.onError = onError
    }

    /// Clockwise rotation that makes the buffer upright (90 for the back camera held in
    /// portrait); set from the device orientation.
    public var rotationDegrees: Int32 {
        get {
            lock.lock()
            defer { lock.unlock() }
            return rotation
        }
        set {
            lock.lock()
            rotation = newValue
            lock.unlock()
        }
    }

    public func configure() throws {
        session.beginConfiguration()
        defer { session.commitConfiguration() }
        session.sessionPreset = .hd1280x720
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back) else {
            throw CameraFeedError.noCamera
        }
        let input = try AVCaptureDeviceInput(device: device)
        guard session.canAddInput(input) else { throw CameraFeedError.cannotAddInput }
        session.addInput(input)
        let output = AVCaptureVideoDataOutput()
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: pixelFormat]
        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: queue)
        guard session.canAddOutput(output) else { throw CameraFeedError.cannotAddOutput }
        session.addOutput(output)
    }

    /// Starts capture (startRunning blocks, so it runs on the camera queue).
    public func start() {
        queue.async { self.session.startRunning() }
    }

    /// Stops capture and returns once no frame is being pushed any more. Blocks: call it off
    /// the main thread.
    public func stopAndWait() {
        queue.sync { self.session.stopRunning() }
    }

    public func captureOutput(
        _ output: AVCaptureOutput,
        didOutput sampleBuffer: CMSampleBuffer,
        from connection: AVCaptureConnection
    ) {
        guard let pb = CMSampleBufferGetImageBuffer(sampleBuffer),
              CVPixelBufferLockBaseAddress(pb, .readOnly) == kCVReturnSuccess
        else { return }
        // The planes are read by address inside pushFrameBuffers: unlock only after it returns.
        defer { CVPixelBufferUnlockBaseAddress(pb, .readOnly) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        guard let frame = PixelBufferFrames.frame(pb, rotationDegrees: rotationDegrees, timestampMs: now, gps: location())
        else { return }
        do {
            _ = try scanner.pushFrameBuffers(frame: frame)
        } catch {
            onError(error)
        }
    }
}
