// The error table: every Error has a status, a standard reason phrase and a short lowercase detail.
#include <gtest/gtest.h>

#include <cctype>

#include "http/errors.hpp"

using namespace luath::http;

namespace {

constexpr Error kLast = Error::BadTrailer;

TEST(ErrorInfo, Statuses) {
    EXPECT_EQ(error_info(Error::TargetTooLong).status, 414);
    EXPECT_EQ(error_info(Error::HeadTooLarge).status, 431);
    EXPECT_EQ(error_info(Error::TooManyHeaders).status, 431);
    EXPECT_EQ(error_info(Error::BodyTooLarge).status, 413);
    EXPECT_EQ(error_info(Error::UnknownTransferCoding).status, 501);
    EXPECT_EQ(error_info(Error::UnsupportedVersion).status, 505);
    for (Error e : {Error::BadRequestLine, Error::BadMethod, Error::BadTarget, Error::BadVersion,
                    Error::BadHeaderName, Error::SpaceBeforeColon, Error::BadHeaderValue, Error::ObsFold,
                    Error::BareLF, Error::MissingHost, Error::DuplicateHost, Error::BadHost, Error::BadContentLength,
                    Error::ConflictingContentLength, Error::ContentLengthWithTransferEncoding,
                    Error::TransferEncodingNotChunked, Error::TransferEncodingOnHttp10, Error::BadChunkSize,
                    Error::BadChunkExtension, Error::BadChunkData, Error::BadTrailer}) {
        EXPECT_EQ(error_info(e).status, 400) << int(e);
        EXPECT_EQ(error_info(e).reason, "Bad Request") << int(e);
    }
}

TEST(ErrorInfo, ReasonPhrases) {
    EXPECT_EQ(error_info(Error::TargetTooLong).reason, "URI Too Long");
    EXPECT_EQ(error_info(Error::HeadTooLarge).reason, "Request Header Fields Too Large");
    EXPECT_EQ(error_info(Error::TooManyHeaders).reason, "Request Header Fields Too Large");
    EXPECT_EQ(error_info(Error::BodyTooLarge).reason, "Content Too Large");
    EXPECT_EQ(error_info(Error::UnknownTransferCoding).reason, "Not Implemented");
    EXPECT_EQ(error_info(Error::UnsupportedVersion).reason, "HTTP Version Not Supported");
}

TEST(ErrorInfo, DetailsShortLowercaseDistinct) {
    for (int i = 1; i <= int(kLast); ++i) {
        const ErrorInfo a = error_info(Error(i));
        EXPECT_FALSE(a.detail.empty()) << i;
        EXPECT_LE(a.detail.size(), 60u) << i;
        for (char c : a.detail) EXPECT_FALSE(std::isupper(static_cast<unsigned char>(c))) << i;
        EXPECT_GE(a.status, 400) << i;
        EXPECT_LT(a.status, 600) << i;
        for (int j = 1; j < i; ++j) EXPECT_NE(a.detail, error_info(Error(j)).detail) << i << " " << j;
    }
}

}  // namespace
