// The SwiftUI app: the current screen from AppModel, alerts above everything, messages at the bottom.
import PlatewatchFFI
import SwiftUI

@main
struct PlatewatchApp: App {
    @StateObject private var model = AppModel()

    var body: some Scene {
        WindowGroup {
            RootView().environmentObject(model)
        }
    }
}

struct RootView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        ZStack(alignment: .bottom) {
            switch model.screen {
            case .login: LoginView()
            case .session: SessionView()
            case .camera: CameraView()
            case .settings: SettingsView()
            }
            if let alert = model.alerts.first {
                AlertView(alert: alert, waiting: model.alerts.count - 1)
                    .id(alert.alertId)
                    .transition(.move(edge: .bottom))
            }
            if let message = model.message {
                HStack {
                    Text(message).font(.callout)
                    Spacer()
                    Button("OK") { model.message = nil }
                }
                .padding()
                .background(.thinMaterial, in: RoundedRectangle(cornerRadius: 12))
                .padding()
            }
        }
    }
}
