// Alert screen: the plate crop beside the read, each matched list with its priority colour and staleness; accept, reject with a reason, or correct.
import PlatewatchFFI
import SwiftUI
import UIKit

func priorityColor(_ priority: Int) -> Color {
    if priority >= AlertSignal.urgent { return .red }
    if priority >= 40 { return .orange }
    return .yellow
}

struct AlertView: View {
    @EnvironmentObject private var model: AppModel
    let alert: AlertEvent
    let waiting: Int

    private enum Step { case decide, reject, correct }
    @State private var step = Step.decide
    @State private var reason = ""
    @State private var corrected = ""

    private static let reasons = [
        "Not the listed vehicle",
        "Plate misread",
        "State does not match",
        "Vehicle does not match the description",
    ]

    var body: some View {
        let top = Int(alert.matches.map(\.priority).max() ?? 0)
        ScrollView {
            VStack(alignment: .leading, spacing: 12) {
                Text((alert.retro ? "HOT LIST ALERT (RETRO-HIT)" : "HOT LIST ALERT")
                     + (waiting > 0 ? "  (+\(waiting) waiting)" : ""))
                    .font(.title2.bold())
                    .foregroundColor(.white)
                    .frame(maxWidth: .infinity, alignment: .leading)
                    .padding()
                    .background(priorityColor(top))
                // Human verification: the crop and the read side by side.
                HStack(alignment: .center, spacing: 16) {
                    if let image = UIImage(data: alert.cropPng) {
                        Image(uiImage: image)
                            .resizable()
                            .interpolation(.none)
                            .scaledToFit()
                            .frame(maxWidth: .infinity, maxHeight: 160)
                            .border(priorityColor(top), width: 2)
                    } else {
                        Text("No plate image: verify the vehicle directly").foregroundColor(.red)
                            .frame(maxWidth: .infinity)
                    }
                    VStack(alignment: .leading) {
                        Text(alert.read.plate).font(.system(.largeTitle, design: .monospaced).bold())
                        if let state = alert.read.state { Text("State \(state)") }
                        if alert.retro {
                            // Seen before the entry was listed: the vehicle may be long gone.
                            Text("Seen \(Date(timeIntervalSince1970: Double(alert.read.lastSeenMs) / 1000).formatted()), before it was listed")
                                .font(.footnote)
                            Text("Read confidence \(Int(alert.read.confidence * 100))%").font(.footnote)
                        } else {
                            Text("Read confidence \(Int(alert.read.confidence * 100))% over \(alert.read.frames) frames")
                                .font(.footnote)
                        }
                    }
                    .frame(maxWidth: .infinity, alignment: .leading)
                }
                ForEach(Array(alert.matches.enumerated()), id: \.offset) { _, m in
                    MatchRow(match: m)
                }
                actions
            }
            .padding()
        }
        .background(Color(uiColor: .systemBackground).ignoresSafeArea())
        .onAppear { corrected = alert.read.plate }
    }

    @ViewBuilder private var actions: some View {
        switch step {
        case .decide:
            HStack {
                Button("Confirm match") { model.accept(alert) }.buttonStyle(.borderedProminent).tint(.green)
                Button("Reject") { step = .reject }.buttonStyle(.bordered)
                Button("Correct the read") { step = .correct }
            }
        case .reject:
            Text("Why is this not a match?").font(.headline)
            ForEach(AlertView.reasons, id: \.self) { r in
                Button(r) { reason = r }.buttonStyle(.bordered)
            }
            TextField("Reason", text: $reason).textFieldStyle(.roundedBorder)
            HStack {
                Button("Reject alert") { model.reject(alert, reason: reason.trimmingCharacters(in: .whitespaces)) }
                    .buttonStyle(.borderedProminent)
                    .disabled(reason.trimmingCharacters(in: .whitespaces).isEmpty)
                Button("Back") { step = .decide }
            }
        case .correct:
            Text("The plate on the image reads differently: enter it as it is. The alert is rejected as a misread and your reading is kept.")
                .font(.callout)
            TextField("Plate as read by you", text: $corrected)
                .textFieldStyle(.roundedBorder)
                .textInputAutocapitalization(.characters)
                .autocorrectionDisabled()
            HStack {
                Button("Save correction") { model.correct(alert, plate: normalized) }
                    .buttonStyle(.borderedProminent)
                    .disabled(normalized.isEmpty || normalized == alert.read.plate)
                Button("Back") { step = .decide }
            }
        }
    }

    private var normalized: String {
        String(corrected.uppercased().filter { $0.isLetter || $0.isNumber })
    }
}

private struct MatchRow: View {
    let match: AlertMatch

    var body: some View {
        let colour = priorityColor(Int(match.priority))
        VStack(alignment: .leading, spacing: 4) {
            HStack {
                Text("P\(match.priority)").bold().foregroundColor(.white)
                    .padding(.horizontal, 6).background(colour)
                Text("\(match.list) · \(match.category.replacingOccurrences(of: "_", with: " "))").bold()
            }
            Text("Listed plate \(match.entryPlate) · \(kind) · score \(String(format: "%.2f", match.score))")
                .font(.system(.callout, design: .monospaced))
            if match.stale {
                Text("STALE LIST: \(age(match.listAgeSecs)) old, the entry may no longer be valid")
                    .bold().foregroundColor(.red)
            }
        }
        .padding(8)
        .frame(maxWidth: .infinity, alignment: .leading)
        .overlay(RoundedRectangle(cornerRadius: 6).stroke(colour, lineWidth: 2))
    }

    private var kind: String {
        switch match.kind {
        case .exact: return "exact"
        case .lookAlike: return "look-alike characters"
        case .oneEdit: return "one character different"
        case .wildcard: return "wildcard entry"
        }
    }
}
