// Settings: server URL, fallback reason codes, the pinned hot list key (or trust on first use), detection/read/alert thresholds and the upload interval.
import PlatewatchFFI
import SwiftUI

struct SettingsView: View {
    @EnvironmentObject private var model: AppModel
    @State private var draft = AppSettings()
    @State private var reasons = ""

    private var edited: AppSettings {
        var s = draft
        s.reasonCodes = reasons.split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return s
    }

    var body: some View {
        NavigationStack {
            Form {
                Section("Server") {
                    TextField("https://…", text: $draft.serverUrl)
                        .keyboardType(.URL)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                }
                Section("Reason codes until the server's are fetched (comma separated)") {
                    TextField("patrol, investigation, …", text: $reasons, axis: .vertical)
                        .textInputAutocapitalization(.never)
                }
                Section {
                    TextField("Publisher key (base64, from the operator)", text: $draft.hotlistKey, axis: .vertical)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    Toggle("Without a key: trust the server's key at the first sign-in and keep it", isOn: $draft.trustServerKey)
                        .disabled(!draft.hotlistKey.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
                } header: {
                    Text("Hot list key")
                } footer: {
                    Text(keyFooter)
                }
                Section {
                    threshold("Alert score", $draft.alertThreshold)
                    threshold("Minimum read confidence", $draft.minReadConfidence)
                    threshold("Detector score", $draft.detectorThreshold)
                } header: {
                    Text("Thresholds")
                } footer: {
                    Text("Between 0 and 1; 0 keeps the engine's default (alert 0.5, read 0.5, detector 0.15).")
                }
                Section("Upload every (seconds)") {
                    TextField("60", value: $draft.syncIntervalSec, format: .number).keyboardType(.numberPad)
                }
                if let problem = edited.problem {
                    Text(problem).foregroundColor(.red)
                }
            }
            .navigationTitle("Settings")
            .toolbar {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Cancel") { model.closeSettings() }.disabled(model.settings.problem != nil)
                }
                ToolbarItem(placement: .confirmationAction) {
                    Button("Save") { model.save(edited) }.disabled(edited.problem != nil || model.busy)
                }
            }
            .onAppear {
                draft = model.settings
                reasons = model.settings.reasonCodes.joined(separator: ", ")
            }
        }
    }

    /// The key's id (to compare with the operator's), or what the key is for.
    private var keyFooter: String {
        let key = draft.hotlistKey.trimmingCharacters(in: .whitespacesAndNewlines)
        if key.isEmpty { return "Every hot list must be signed with the pinned key." }
        if let id = try? hotlistKeyId(publicKey: key) { return "Key id \(id)" }
        return "Not a valid publisher key"
    }

    private func threshold(_ label: String, _ value: Binding<Float>) -> some View {
        HStack {
            Text(label)
            Spacer()
            TextField("0", value: value, format: .number)
                .keyboardType(.decimalPad)
                .multilineTextAlignment(.trailing)
                .frame(maxWidth: 100)
        }
    }
}
