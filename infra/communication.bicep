// Azure Communication Services e-mail. An Azure-managed domain (DoNotReply@<guid>.azurecomm.net) works at
// once; a custom domain needs DNS records (SPF, DKIM) and verification before ACS accepts it, so it is
// linked, and used as the sender, only once the operator says it is verified (docs/operations.md).
param communicationServiceName string
param emailServiceName string
param tags object
@description('Where ACS stores data at rest, e.g. Europe, United States, Germany.')
param dataLocation string
@description('Custom sender domain, e.g. mail.example.com; empty: the Azure-managed domain only.')
param customDomainName string = ''
@description('Set true after the custom domain shows Verified for Domain, SPF, DKIM and DKIM2.')
param customDomainVerified bool = false

var hasCustomDomain = !empty(customDomainName)
var useCustomDomain = hasCustomDomain && customDomainVerified

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource azureManagedDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    // No tracking pixels or rewritten links in license and billing mail.
    userEngagementTracking: 'Disabled'
  }
}

resource customDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = if (hasCustomDomain) {
  parent: emailService
  name: hasCustomDomain ? customDomainName : 'unused'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'CustomerManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource customSender 'Microsoft.Communication/emailServices/domains/senderUsernames@2023-04-01' = if (hasCustomDomain) {
  parent: customDomain
  name: 'donotreply'
  properties: {
    username: 'DoNotReply'
    displayName: 'SecureMailMerge'
  }
}

// API version 2025-05-01: the first stable one with `disableLocalAuth` (older ones ignore the property).
resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    // No access keys or connection strings: the app sends with its managed identity (infra/rbac.bicep).
    disableLocalAuth: true
    linkedDomains: useCustomDomain ? [azureManagedDomain.id, customDomain.id] : [azureManagedDomain.id]
  }
}

output id string = communicationService.id
output name string = communicationService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
output senderAddress string = useCustomDomain ? 'DoNotReply@${customDomainName}' : 'DoNotReply@${azureManagedDomain.properties.mailFromSenderDomain}'
