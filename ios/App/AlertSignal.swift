// Sound and haptics when a hot list alert arrives; more insistent for high priorities.
import AudioToolbox
import UIKit

@MainActor
final class AlertSignal {
    /// Priorities at or above this are shown in red and signalled insistently.
    static let urgent = 70

    private let haptics = UINotificationFeedbackGenerator()

    func alert(priority: Int) {
        let urgent = priority >= AlertSignal.urgent
        // 1005 is the system "alarm" sound; AudioServicesPlayAlertSound also vibrates when the
        // ringer is silenced.
        AudioServicesPlayAlertSound(SystemSoundID(urgent ? 1005 : 1057))
        haptics.notificationOccurred(urgent ? .error : .warning)
    }
}
