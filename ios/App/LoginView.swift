// Sign-in: user and password, and the server's rules of behaviour with an explicit acknowledgement when it has them.
import SwiftUI

struct LoginView: View {
    @EnvironmentObject private var model: AppModel
    @State private var user = ""
    @State private var password = ""
    @State private var acknowledged = false

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    Text(model.settings.serverUrl.isEmpty ? "No server configured" : model.settings.serverUrl)
                        .font(.footnote)
                    TextField("User", text: $user)
                        .textInputAutocapitalization(.never)
                        .autocorrectionDisabled()
                    SecureField("Password", text: $password)
                }
                if let rules = model.rules {
                    Section("Rules of behaviour, version \(rules.version)") {
                        ScrollView { Text(rules.text).font(.callout) }.frame(maxHeight: 300)
                        Toggle("I have read these rules of behaviour and will follow them", isOn: $acknowledged)
                    }
                }
                Section {
                    Button(model.rules == nil ? "Sign in" : "Acknowledge and sign in") {
                        model.signIn(user: user, password: password, acknowledged: acknowledged)
                    }
                    .disabled(model.busy || model.settings.serverUrl.isEmpty || user.isEmpty || password.isEmpty
                        || (model.rules != nil && !acknowledged))
                    if model.busy { ProgressView() }
                }
            }
            .navigationTitle("Platewatch")
            .toolbar {
                Button("Settings") { model.openSettings() }.disabled(model.busy)
            }
            .onChange(of: model.rules) { _ in acknowledged = false }
        }
    }
}
