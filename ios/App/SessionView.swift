// Session form: reason code, case number or justification, on-behalf-of; starts scanning. Also upload and hot list status.
import SwiftUI

struct SessionView: View {
    @EnvironmentObject private var model: AppModel
    /// No default: the officer picks the reason explicitly.
    @State private var reason = ""
    @State private var caseNumber = ""
    @State private var justification = ""
    @State private var onBehalfOf = ""

    private var complete: Bool {
        model.offeredReasonCodes.contains(reason)
            && !(caseNumber.trimmingCharacters(in: .whitespaces).isEmpty
                && justification.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    var body: some View {
        NavigationStack {
            Form {
                Section { StatusView() }
                Section("Reason code") {
                    Picker("Reason", selection: $reason) {
                        Text("Choose…").tag("")
                        ForEach(model.offeredReasonCodes, id: \.self) { Text($0).tag($0) }
                    }
                    .pickerStyle(.inline)
                    .labelsHidden()
                }
                Section("Case") {
                    TextField("Case number", text: $caseNumber)
                    TextField("Justification (when there is no case number)", text: $justification, axis: .vertical)
                        .lineLimit(2...5)
                    TextField("On behalf of (user name, optional)", text: $onBehalfOf)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                }
                Section {
                    Button("Start scanning") {
                        model.startSession(
                            reasonCode: reason, caseNumber: caseNumber,
                            justification: justification, onBehalfOf: onBehalfOf
                        )
                    }
                    .disabled(!complete || model.busy)
                    if !complete {
                        Text("A reason code and a case number or a justification are required.").font(.footnote)
                    }
                }
                Section {
                    Button("Upload now") { model.syncNow() }.disabled(model.busy || model.syncing)
                    Button("Sign out", role: .destructive) { model.signOut() }.disabled(model.busy)
                }
            }
            .navigationTitle("New session")
            .toolbar { Button("Settings") { model.openSettings() }.disabled(model.busy) }
        }
    }
}
