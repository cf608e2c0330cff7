// Minimal SwiftUI shell: session form, camera preview feeding the scanner, alert sheet with
// the crop beside the read and accept/reject. All logic lives in Rust (Scanner).
import AVFoundation
import Platewatch
import PlatewatchFFI
import SwiftUI

@main
struct PlatewatchApp: App {
    var body: some Scene { WindowGroup { ScanView() } }
}

@MainActor
final class ScanModel: ObservableObject {
    @Published var alert: AlertEvent?
    @Published var error: String?
    var scanner: Scanner?
    var feed: CameraFeed?

    func start(user: String, reason: String, caseNumber: String) {
        do {
            let models = Bundle.main.resourcePath!
            let docs = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
            let scanner = try Scanner(config: ScannerConfig(
                detector: .file(path: models + "/plate_detector.onnx"),
                reader: .file(path: models + "/plate_reader.onnx"),
                storePath: docs.appendingPathComponent("device.db").path,
                deviceId: UIDevice.current.identifierForVendor?.uuidString ?? "ios",
                reasonCodes: ["patrol", "investigation"]))
            _ = try scanner.startSession(request: SessionStart(user: user, reasonCode: reason, caseNumber: caseNumber))
            let feed = CameraFeed(scanner: scanner, location: { nil })
            try feed.configure()
            DispatchQueue.global().async { feed.session.startRunning() }
            self.scanner = scanner
            self.feed = feed
            Task { for await a in scanner.alerts() { self.alert = a } }
        } catch {
            self.error = "\(error)"
        }
    }

    func decide(_ accept: Bool, reason: String = "not the listed vehicle") {
        guard let a = alert, let s = scanner else { return }
        do {
            if accept { try s.acceptAlert(alertId: a.alertId) } else { try s.rejectAlert(alertId: a.alertId, reason: reason) }
            alert = nil
        } catch { self.error = "\(error)" }
    }
}

struct ScanView: View {
    @StateObject private var model = ScanModel()
    @State private var user = ""
    @State private var reason = "patrol"
    @State private var caseNumber = ""

    var body: some View {
        if model.scanner == nil {
            Form {
                TextField("User", text: $user)
                Picker("Reason", selection: $reason) { Text("Patrol").tag("patrol"); Text("Investigation").tag("investigation") }
                TextField("Case number", text: $caseNumber)
                Button("Start scanning") { model.start(user: user, reason: reason, caseNumber: caseNumber) }
                if let e = model.error { Text(e).foregroundColor(.red) }
            }
        } else {
            Text("Scanning…")
                .sheet(item: Binding(get: { model.alert.map { AlertBox(alert: $0) } }, set: { _ in })) { box in
                    VStack(spacing: 16) {
                        if let img = UIImage(data: box.alert.cropPng) { Image(uiImage: img).resizable().scaledToFit() }
                        Text(box.alert.read.plate).font(.largeTitle.monospaced())
                        ForEach(box.alert.matches, id: \.list) { m in
                            Text("\(m.list) · \(m.category) · priority \(m.priority)\(m.stale ? " · STALE LIST" : "")")
                        }
                        HStack { Button("Accept") { model.decide(true) }; Button("Reject") { model.decide(false) } }
                    }.padding()
                }
        }
    }
}

struct AlertBox: Identifiable { let alert: AlertEvent; var id: String { alert.alertId } }
