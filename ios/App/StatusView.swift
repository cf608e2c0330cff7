// Status strip: encounters waiting to upload, hot list age and staleness, sync activity and frame counters.
import PlatewatchFFI
import SwiftUI

struct StatusView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        VStack(alignment: .leading, spacing: 4) {
            if let u = model.uploads {
                Text(u.rejected > 0 ? "To upload: \(u.pending) · refused by server: \(u.rejected)" : "To upload: \(u.pending)")
                    .foregroundColor(u.pending > 0 ? .yellow : .primary)
            } else {
                Text("Uploads: …")
            }
            hotlistLine
            if model.syncing { Text("Uploading…") }
            if let s = model.stats {
                Text(String(format: "%.0f ms/frame · dropped %llu", s.lastInferenceMs, s.dropped))
                    .font(.caption)
            }
        }
        .font(.callout)
    }

    @ViewBuilder private var hotlistLine: some View {
        let lists = model.hotlists
        let stale = lists.filter(\.stale)
        if lists.isEmpty {
            Text("No hot lists on this device").bold().foregroundColor(.red)
        } else if !stale.isEmpty {
            Text("STALE LIST: " + stale.map { "\($0.name) (\(age($0.ageSecs)))" }.joined(separator: ", "))
                .bold().foregroundColor(.red)
        } else {
            Text("Hot lists \(age(lists.map(\.ageSecs).max() ?? 0)) old")
        }
    }
}

/// "45 s", "12 min", "5 h", "3 d".
func age(_ secs: Int64) -> String {
    if secs < 120 { return "\(secs) s" }
    if secs < 2 * 3600 { return "\(secs / 60) min" }
    if secs < 2 * 86400 { return "\(secs / 3600) h" }
    return "\(secs / 86400) d"
}
