import Testing
@testable import PortalCore

@Suite struct HexTests {
    @Test func bytesBecomeLowerCaseHexTwoDigitsEach() {
        let bytes: [UInt8] = [0x00, 0x01, 0x0a, 0x7f, 0x80, 0xab, 0xff]
        #expect(Hex.encode(bytes) == "00010a7f80abff")
        #expect(bytes.withUnsafeBytes { Hex.encode($0) } == "00010a7f80abff")
        // A sequence that is not contiguous in memory takes the same path.
        #expect(Hex.encode(bytes.lazy.map { $0 }) == "00010a7f80abff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test func everyByteValueRoundTrips() {
        let all = (0...255).map { UInt8($0) }
        let text = Hex.encode(all)
        #expect(text.count == 512)
        let back = stride(from: 0, to: 512, by: 2).map { offset -> UInt8 in
            let start = text.index(text.startIndex, offsetBy: offset)
            return UInt8(text[start..<text.index(start, offsetBy: 2)], radix: 16)!
        }
        #expect(back == all)
    }
}
