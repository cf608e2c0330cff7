// Camera screen: the capture preview, a live overlay of plate boxes and reads, status, upload and end-session buttons.
import AVFoundation
import PlatewatchFFI
import SwiftUI

struct CameraView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        ZStack {
            Color.black.ignoresSafeArea()
            if let feed = model.feed {
                CameraPreview(session: feed.session).ignoresSafeArea()
            } else {
                ProgressView().tint(.white)
            }
            PlateOverlay(frame: model.frame).ignoresSafeArea()
            VStack(alignment: .leading, spacing: 8) {
                StatusView()
                    .padding(8)
                    .background(.black.opacity(0.6), in: RoundedRectangle(cornerRadius: 8))
                    .foregroundColor(.white)
                Spacer()
                RecentReads(reads: model.reads)
                HStack {
                    Spacer()
                    Button("Upload") { model.syncNow() }
                        .buttonStyle(.bordered).disabled(model.syncing)
                    Button("End session") { model.endSession() }
                        .buttonStyle(.borderedProminent).disabled(model.busy)
                }
            }
            .padding()
        }
        .onAppear {
            UIApplication.shared.isIdleTimerDisabled = true
            model.startCamera()
        }
        .onDisappear { UIApplication.shared.isIdleTimerDisabled = false }
    }
}

/// AVCaptureVideoPreviewLayer as the backing layer of a UIView, filling it (aspect fill).
struct CameraPreview: UIViewRepresentable {
    let session: AVCaptureSession

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        view.previewLayer.session = session
        view.previewLayer.videoGravity = .resizeAspectFill
        return view
    }

    func updateUIView(_ view: PreviewView, context: Context) {
        if view.previewLayer.session !== session { view.previewLayer.session = session }
    }
}

/// Plate boxes and per-frame reads over the preview. Boxes are in upright frame pixels and the
/// preview fills the (portrait) screen with aspect fill, so one scale and offset apply; frames
/// made upright for a landscape grip do not match the portrait preview and get no boxes.
struct PlateOverlay: View {
    let frame: FrameResult?

    var body: some View {
        Canvas { context, size in
            guard let f = frame, f.width > 0, f.height > 0, f.height >= f.width else { return }
            let fw = CGFloat(f.width)
            let fh = CGFloat(f.height)
            let scale = max(size.width / fw, size.height / fh)
            let dx = (size.width - fw * scale) / 2
            let dy = (size.height - fh * scale) / 2
            for d in f.detections {
                let rect = CGRect(
                    x: dx + CGFloat(d.bbox.x) * scale,
                    y: dy + CGFloat(d.bbox.y) * scale,
                    width: CGFloat(d.bbox.width) * scale,
                    height: CGFloat(d.bbox.height) * scale
                )
                context.stroke(Path(rect), with: .color(.green), lineWidth: 3)
                if !d.text.isEmpty {
                    let label = Text(d.text).font(.system(.headline, design: .monospaced)).foregroundColor(.green)
                    context.draw(label, at: CGPoint(x: rect.minX, y: max(rect.minY - 4, 0)), anchor: .bottomLeading)
                }
            }
        }
        .allowsHitTesting(false)
    }
}

/// The consensus reads of the last vehicle passes (on screen only, never logged).
struct RecentReads: View {
    let reads: [PlateReadEvent]

    var body: some View {
        if !reads.isEmpty {
            VStack(alignment: .leading, spacing: 2) {
                ForEach(Array(reads.enumerated()), id: \.offset) { _, r in
                    Text("\(r.plate)\(r.state.map { "  \($0)" } ?? "")  \(Int(r.confidence * 100))%")
                        .font(.system(.body, design: .monospaced))
                }
            }
            .padding(8)
            .foregroundColor(.white)
            .background(.black.opacity(0.6), in: RoundedRectangle(cornerRadius: 8))
        }
    }
}
